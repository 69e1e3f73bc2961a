package membership

// ValidName reports whether s may be a node's name: 1 to MaxNameLen bytes
// of ASCII letters, digits, '-' and '_'.
//
// This one rule holds wherever a node is named: the member name on the
// wire (Config.Name, heartbeats), replicator/cluster's Config.Node,
// hanode's --node and the route suffix of an httpsession token, which is
// why a name has no dots: a load balancer takes the last dot-separated
// field of the session cookie as the route.
func ValidName(s string) bool {
	if len(s) == 0 || len(s) > MaxNameLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
