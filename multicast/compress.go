package multicast

import (
	"errors"
	"fmt"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// Compression selects the codec for outgoing messages. Receivers decode
// every codec whatever their own setting: a compressed message starts with
// a one-byte codec id.
type Compression uint8

// Codecs.
const (
	CompressionDefault Compression = 0 // the package default (S2)
	CompressionNone    Compression = 1
	CompressionS2      Compression = 2
	CompressionZstd    Compression = 3
)

const (
	codecZstd = 1
	codecS2   = 2
)

// errDecompress is wrapped by decompression failures.
var errDecompress = errors.New("multicast: decompression failed")

// codec compresses and decompresses whole messages, before fragmentation
// and after reassembly. Safe for concurrent use.
type codec struct {
	mode      Compression
	threshold int
	max       int
	enc       *zstd.Encoder
	dec       *zstd.Decoder
}

func newCodec(mode Compression, threshold, maxMessage int) *codec {
	if mode == CompressionDefault {
		mode = CompressionS2
	}
	c := &codec{mode: mode, threshold: threshold, max: maxMessage}
	var err error
	if mode == CompressionZstd {
		c.enc, err = zstd.NewWriter(nil,
			zstd.WithEncoderLevel(zstd.SpeedFastest),
			zstd.WithEncoderConcurrency(1),
			zstd.WithLowerEncoderMem(true),
			zstd.WithWindowSize(1<<20),
			zstd.WithEncoderCRC(false))
		if err != nil {
			panic("multicast: zstd encoder: " + err.Error())
		}
	}
	// The decoder is always ready: peers may use another codec.
	win := uint64(zstd.MinWindowSize)
	for win < uint64(maxMessage) && win < zstd.MaxWindowSize {
		win <<= 1
	}
	c.dec, err = zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(1),
		zstd.WithDecoderLowmem(true),
		zstd.WithDecoderMaxMemory(uint64(maxMessage)),
		zstd.WithDecoderMaxWindow(win),
		zstd.WithDecodeAllCapLimit(true))
	if err != nil {
		panic("multicast: zstd decoder: " + err.Error())
	}
	return c
}

// compress returns the encoded message (codec byte first) and true, or
// src and false when compression is off, src is small, or it does not
// shrink.
func (c *codec) compress(src []byte) ([]byte, bool) {
	if c.mode == CompressionNone || len(src) < c.threshold {
		return src, false
	}
	var out []byte
	switch c.mode {
	case CompressionZstd:
		out = c.enc.EncodeAll(src, append(make([]byte, 0, len(src)), codecZstd))
	default:
		buf := make([]byte, 1+s2.MaxEncodedLen(len(src)))
		buf[0] = codecS2
		out = buf[:1+len(s2.Encode(buf[1:], src))]
	}
	if len(out) >= len(src) {
		return src, false
	}
	return out, true
}

// decompress decodes a message produced by compress, refusing output
// larger than the maximum message size.
func (c *codec) decompress(src []byte) ([]byte, error) {
	if len(src) < 1 {
		return nil, fmt.Errorf("%w: empty", errDecompress)
	}
	switch src[0] {
	case codecS2:
		n, err := s2.DecodedLen(src[1:])
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errDecompress, err)
		}
		if n > c.max {
			return nil, fmt.Errorf("%w: decoded size %d exceeds %d", errDecompress, n, c.max)
		}
		out, err := s2.Decode(make([]byte, n), src[1:])
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errDecompress, err)
		}
		return out, nil
	case codecZstd:
		var fh zstd.Header
		if err := fh.Decode(src[1:]); err != nil {
			return nil, fmt.Errorf("%w: %w", errDecompress, err)
		}
		capHint := c.max
		if fh.HasFCS {
			if fh.FrameContentSize > uint64(c.max) {
				return nil, fmt.Errorf("%w: decoded size %d exceeds %d", errDecompress, fh.FrameContentSize, c.max)
			}
			capHint = int(fh.FrameContentSize)
		}
		// WithDecodeAllCapLimit: the output never grows beyond cap(dst).
		out, err := c.dec.DecodeAll(src[1:], make([]byte, 0, capHint))
		if err != nil {
			return nil, fmt.Errorf("%w: %w", errDecompress, err)
		}
		if len(out) > c.max {
			return nil, fmt.Errorf("%w: decoded size exceeds %d", errDecompress, c.max)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: unknown codec %d", errDecompress, src[0])
}
