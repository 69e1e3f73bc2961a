package resp

import "strconv"

// Reply accumulates the encoded replies of one connection. It speaks RESP2
// or, after HELLO 3, RESP3; the few types whose encoding differs (null,
// map, set, double) go through methods that know the protocol. The zero
// value is a RESP2 reply buffer.
type Reply struct {
	B     []byte // the encoded replies, ready to write
	RESP3 bool   // speak RESP3 (after HELLO 3)
}

// Len returns the number of encoded bytes (a mark for Truncate).
func (r *Reply) Len() int { return len(r.B) }

// Truncate drops what was written after mark.
func (r *Reply) Truncate(mark int) { r.B = r.B[:mark] }

// Reset empties the buffer, keeping its memory.
func (r *Reply) Reset() { r.B = r.B[:0] }

// Simple writes a simple string (+OK).
func (r *Reply) Simple(s string) {
	r.B = append(r.B, '+')
	r.B = append(r.B, s...)
	r.B = append(r.B, '\r', '\n')
}

// OK writes +OK.
func (r *Reply) OK() { r.B = append(r.B, "+OK\r\n"...) }

// Error writes an error; msg starts with its code (ERR, WRONGTYPE, ...).
// Line breaks in msg are replaced by spaces.
func (r *Reply) Error(msg string) {
	r.B = append(r.B, '-')
	for i := 0; i < len(msg); i++ {
		c := msg[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		r.B = append(r.B, c)
	}
	r.B = append(r.B, '\r', '\n')
}

// Int writes an integer.
func (r *Reply) Int(n int64) {
	r.B = append(r.B, ':')
	r.B = strconv.AppendInt(r.B, n, 10)
	r.B = append(r.B, '\r', '\n')
}

// Bulk writes a bulk string.
func (r *Reply) Bulk(b []byte) {
	r.B = append(r.B, '$')
	r.B = strconv.AppendInt(r.B, int64(len(b)), 10)
	r.B = append(r.B, '\r', '\n')
	r.B = append(r.B, b...)
	r.B = append(r.B, '\r', '\n')
}

// BulkString writes a bulk string.
func (r *Reply) BulkString(s string) {
	r.B = append(r.B, '$')
	r.B = strconv.AppendInt(r.B, int64(len(s)), 10)
	r.B = append(r.B, '\r', '\n')
	r.B = append(r.B, s...)
	r.B = append(r.B, '\r', '\n')
}

// Verbatim writes a verbatim text string (RESP3 "=", RESP2 bulk), as INFO
// and CLIENT INFO reply.
func (r *Reply) Verbatim(s string) {
	if !r.RESP3 {
		r.BulkString(s)
		return
	}
	r.B = append(r.B, '=')
	r.B = strconv.AppendInt(r.B, int64(len(s)+4), 10)
	r.B = append(r.B, "\r\ntxt:"...)
	r.B = append(r.B, s...)
	r.B = append(r.B, '\r', '\n')
}

// Null writes the null reply: RESP2's null bulk string, RESP3's null.
func (r *Reply) Null() {
	if r.RESP3 {
		r.B = append(r.B, "_\r\n"...)
		return
	}
	r.B = append(r.B, "$-1\r\n"...)
}

// NullArray writes RESP2's null array (RESP3's null).
func (r *Reply) NullArray() {
	if r.RESP3 {
		r.B = append(r.B, "_\r\n"...)
		return
	}
	r.B = append(r.B, "*-1\r\n"...)
}

// Array writes an array header; n elements follow.
func (r *Reply) Array(n int) {
	r.B = append(r.B, '*')
	r.B = strconv.AppendInt(r.B, int64(n), 10)
	r.B = append(r.B, '\r', '\n')
}

// Map writes a map header with n key-value pairs: RESP3 "%", RESP2 a flat
// array of 2n elements.
func (r *Reply) Map(n int) {
	if !r.RESP3 {
		r.Array(2 * n)
		return
	}
	r.B = append(r.B, '%')
	r.B = strconv.AppendInt(r.B, int64(n), 10)
	r.B = append(r.B, '\r', '\n')
}

// Set writes a set header (RESP3 "~", RESP2 an array).
func (r *Reply) Set(n int) {
	if !r.RESP3 {
		r.Array(n)
		return
	}
	r.B = append(r.B, '~')
	r.B = strconv.AppendInt(r.B, int64(n), 10)
	r.B = append(r.B, '\r', '\n')
}
