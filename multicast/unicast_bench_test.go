package multicast

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
)

// BenchmarkUnicastFanout compares the two ways the unicast link sends one
// sealed packet to N peers: one sendto per peer, or sendmmsg
// (ipv4.PacketConn.WriteBatch) with the same buffer N times. The peers
// are sockets on 127.0.0.1 that nobody reads (the kernel drops what
// overflows; the send cost is what is measured).
func BenchmarkUnicastFanout(b *testing.B) {
	for _, n := range []int{1, 3, 7, 15} {
		for _, batch := range []bool{false, true} {
			name := "sendto"
			if batch {
				name = "sendmmsg"
			}
			b.Run(fmt.Sprintf("%s/peers=%d", name, n), func(b *testing.B) {
				conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
				if err != nil {
					b.Fatal(err)
				}
				defer conn.Close()
				set := newPeerSet(conn.LocalAddr().(*net.UDPAddr).AddrPort())
				var addrs []netip.AddrPort
				for range n {
					r, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
					if err != nil {
						b.Fatal(err)
					}
					defer r.Close()
					addrs = append(addrs, r.LocalAddr().(*net.UDPAddr).AddrPort())
				}
				set.setStatic(addrs, timeZero)
				l := &unicastLink{conn: conn, peers: set, batch: batch}
				l.pc = ipv4PacketConn(conn)
				pkt := make([]byte, 1400)
				b.SetBytes(int64(len(pkt) * n))
				b.ResetTimer()
				for range b.N {
					if err := l.send(pkt, netip.AddrPort{}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
