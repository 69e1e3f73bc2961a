package httpsession

import (
	"bytes"
	"encoding"
	"encoding/binary"
	"encoding/gob"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"sync"
	"time"
)

// ErrUnencodable wraps the errors of values that the codec can never
// encode faithfully, whatever is registered: a chan, a func, an unsafe
// pointer, or (with GobCodec) a struct with unexported fields that gob
// would silently drop. Put returns it; nothing is stored.
var ErrUnencodable = errors.New("httpsession: value cannot be stored")

// Codec turns attribute values into bytes and back. The Manager encodes the
// common immutable types (string, int, int32, int64, bool, float64, []byte,
// time.Time) itself with a small tagged binary encoding; the Codec sees
// every other value. Implementations must be safe for concurrent use.
type Codec interface {
	// Encode returns the encoding of v. An error means the value cannot be
	// stored; Put reports it to the caller.
	Encode(v any) ([]byte, error)
	// Decode decodes data into ptr, which is either a *any (the value
	// comes back with the concrete type it had, as far as the format
	// allows) or a pointer to a concrete type (typed keys).
	Decode(data []byte, ptr any) error
}

// GobCodec encodes values with encoding/gob. It is the default. Values of
// your own types stored with the untyped API must be registered with
// gob.Register (typed keys from NewKey do that for you).
//
// GobCodec refuses, with ErrUnencodable, what gob would lose: a chan or
// func value (gob can never encode one), and a struct type with an
// unexported field or a chan/func field (gob silently drops those, so the
// value would come back different on the next request or on another
// node). Export the fields, or give the type GobEncode/GobDecode (or
// MarshalBinary/UnmarshalBinary) methods: types with such methods are
// trusted as they are. The check looks at types, once per type; values
// held in interface fields are checked when gob reports an error.
type GobCodec struct{}

// Encode implements Codec.
func (GobCodec) Encode(v any) ([]byte, error) {
	if err := gobCheck(reflect.TypeOf(v)); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := gob.NewEncoder(&buf).Encode(&v); err != nil {
		return nil, explainGobError(v, err)
	}
	return buf.Bytes(), nil
}

var gobChecked sync.Map // reflect.Type -> error (nil stored as errOK)

var errOK = errors.New("ok")

// gobCheck reports why values of type t would not survive gob (see
// GobCodec), or nil. The result is cached per type.
func gobCheck(t reflect.Type) error {
	if t == nil {
		return nil
	}
	if e, ok := gobChecked.Load(t); ok {
		if e == errOK {
			return nil
		}
		return e.(error)
	}
	err := checkGobType(t, "", map[reflect.Type]bool{})
	if err == nil {
		gobChecked.Store(t, errOK)
	} else {
		gobChecked.Store(t, err)
	}
	return err
}

var (
	gobEncoderType  = reflect.TypeFor[gob.GobEncoder]()
	binaryMarshaler = reflect.TypeFor[encoding.BinaryMarshaler]()
	textMarshaler   = reflect.TypeFor[encoding.TextMarshaler]()
)

// encodesItself reports whether gob encodes t through a method of its own
// rather than field by field.
func encodesItself(t reflect.Type) bool {
	for _, i := range []reflect.Type{gobEncoderType, binaryMarshaler, textMarshaler} {
		if t.Implements(i) || (t.Kind() != reflect.Pointer && reflect.PointerTo(t).Implements(i)) {
			return true
		}
	}
	return false
}

func checkGobType(t reflect.Type, path string, seen map[reflect.Type]bool) error {
	if seen[t] || encodesItself(t) {
		return nil
	}
	seen[t] = true
	where := ""
	if path != "" {
		where = " (at " + strings.TrimPrefix(path, ".") + ")"
	}
	switch t.Kind() {
	case reflect.Chan, reflect.Func, reflect.UnsafePointer:
		return fmt.Errorf("%w: %s%s is a %s, which can never be encoded (gob has no encoding for it, and registering the type does not help): store the data it refers to instead", ErrUnencodable, t, where, kindName(t.Kind()))
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return checkGobType(t.Elem(), path+"[]", seen)
	case reflect.Map:
		if err := checkGobType(t.Key(), path+"[key]", seen); err != nil {
			return err
		}
		return checkGobType(t.Elem(), path+"[]", seen)
	case reflect.Struct:
		for i := range t.NumField() {
			f := t.Field(i)
			if f.Name == "_" {
				continue
			}
			if !f.IsExported() {
				return fmt.Errorf("%w: %s has the unexported field %s%s, which gob would silently drop: export it, or give %s GobEncode/GobDecode methods", ErrUnencodable, t, f.Name, where, t)
			}
			if err := checkGobType(f.Type, path+"."+f.Name, seen); err != nil {
				return err
			}
		}
	}
	return nil
}

func kindName(k reflect.Kind) string {
	if k == reflect.UnsafePointer {
		return "unsafe.Pointer"
	}
	return k.String()
}

// explainGobError turns gob's error for v into one that says what to do.
// gob reports a chan or func inside an interface as "type not registered",
// which invites a gob.Register that cannot help; look for one first.
func explainGobError(v any, err error) error {
	budget := 10000
	if e := findUnencodable(reflect.ValueOf(v), &budget); e != nil {
		return e
	}
	if strings.Contains(err.Error(), "type not registered") {
		return fmt.Errorf("%w (register the type with gob.Register once at start-up, or store it with a typed key from NewKey, which registers it)", err)
	}
	return err
}

// findUnencodable walks v (interfaces, pointers, containers; at most
// *budget values) and returns gobCheck's error for the first dynamic type
// that gob cannot encode faithfully.
func findUnencodable(v reflect.Value, budget *int) error {
	if !v.IsValid() || *budget <= 0 {
		return nil
	}
	*budget--
	switch v.Kind() {
	case reflect.Interface:
		if v.IsNil() {
			return nil
		}
		e := v.Elem()
		if err := gobCheck(e.Type()); err != nil {
			return err
		}
		return findUnencodable(e, budget)
	case reflect.Pointer:
		if v.IsNil() || encodesItself(v.Type()) {
			return nil
		}
		return findUnencodable(v.Elem(), budget)
	case reflect.Slice, reflect.Array:
		if encodesItself(v.Type()) {
			return nil
		}
		for i := range v.Len() {
			if err := findUnencodable(v.Index(i), budget); err != nil {
				return err
			}
		}
	case reflect.Map:
		if encodesItself(v.Type()) {
			return nil
		}
		it := v.MapRange()
		for it.Next() {
			if err := findUnencodable(it.Key(), budget); err != nil {
				return err
			}
			if err := findUnencodable(it.Value(), budget); err != nil {
				return err
			}
		}
	case reflect.Struct:
		if encodesItself(v.Type()) {
			return nil
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				if err := findUnencodable(v.Field(i), budget); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Decode implements Codec.
func (GobCodec) Decode(data []byte, ptr any) error {
	if p, ok := ptr.(*any); ok {
		return gob.NewDecoder(bytes.NewReader(data)).Decode(p)
	}
	var v any
	if err := gob.NewDecoder(bytes.NewReader(data)).Decode(&v); err != nil {
		return err
	}
	return assignTo(ptr, v)
}

// JSONCodec encodes values with encoding/json. Untyped Get of a value that
// is not one of the common types returns what encoding/json produces for
// an interface (map[string]any, []any, float64...); use typed keys to get
// your own types back. Like encoding/json everywhere, it skips unexported
// struct fields (and fields tagged `json:"-"`) without an error: such a
// field comes back as its zero value.
type JSONCodec struct{}

// Encode implements Codec.
func (JSONCodec) Encode(v any) ([]byte, error) { return json.Marshal(v) }

// Decode implements Codec.
func (JSONCodec) Decode(data []byte, ptr any) error { return json.Unmarshal(data, ptr) }

func assignTo(ptr, v any) error {
	pv := reflect.ValueOf(ptr)
	if pv.Kind() != reflect.Pointer || pv.IsNil() {
		return errors.New("httpsession: decode target is not a non-nil pointer")
	}
	if v == nil {
		pv.Elem().SetZero()
		return nil
	}
	vv := reflect.ValueOf(v)
	if !vv.Type().AssignableTo(pv.Elem().Type()) {
		return fmt.Errorf("httpsession: stored %s is not assignable to %s", vv.Type(), pv.Elem().Type())
	}
	pv.Elem().Set(vv)
	return nil
}

// Tags of the value encoding. Append-only: they are stored in replicas
// and travel between nodes of different versions.
const (
	tagString  byte = 1
	tagInt     byte = 2 // zig-zag varint
	tagInt64   byte = 3 // zig-zag varint
	tagInt32   byte = 4 // zig-zag varint
	tagBool    byte = 5 // one byte, 0 or 1
	tagFloat64 byte = 6 // 8 bytes, IEEE 754 little endian
	tagBytes   byte = 7
	tagTime    byte = 8  // time.Time.MarshalBinary
	tagCodec   byte = 64 // the configured Codec's encoding follows
)

// errUndecodable wraps every decoding failure.
var errUndecodable = errors.New("httpsession: undecodable value")

// encodeValue encodes v, using the tagged fast path for common types and
// c for the rest. mutable reports whether the value may change in place
// after the call (so that a commit must encode it again).
func encodeValue(c Codec, v any) (b []byte, mutable bool, err error) {
	switch x := v.(type) {
	case string:
		b = make([]byte, 1+len(x))
		b[0] = tagString
		copy(b[1:], x)
		return b, false, nil
	case int:
		return appendVarint(tagInt, int64(x)), false, nil
	case int64:
		return appendVarint(tagInt64, x), false, nil
	case int32:
		return appendVarint(tagInt32, int64(x)), false, nil
	case bool:
		b = []byte{tagBool, 0}
		if x {
			b[1] = 1
		}
		return b, false, nil
	case float64:
		b = make([]byte, 9)
		b[0] = tagFloat64
		binary.LittleEndian.PutUint64(b[1:], math.Float64bits(x))
		return b, false, nil
	case []byte:
		b = make([]byte, 1+len(x))
		b[0] = tagBytes
		copy(b[1:], x)
		return b, true, nil
	case time.Time:
		tb, err := canonicalTime(x).MarshalBinary()
		if err != nil {
			return nil, false, err
		}
		b = make([]byte, 1+len(tb))
		b[0] = tagTime
		copy(b[1:], tb)
		return b, false, nil
	}
	if v == nil {
		return nil, false, errors.New("httpsession: cannot store a nil value; use Remove")
	}
	cb, err := c.Encode(v)
	if err != nil {
		return nil, false, err
	}
	b = make([]byte, 1+len(cb))
	b[0] = tagCodec
	copy(b[1:], cb)
	return b, true, nil
}

func appendVarint(tag byte, x int64) []byte {
	var buf [1 + binary.MaxVarintLen64]byte
	buf[0] = tag
	n := binary.PutVarint(buf[1:], x)
	b := make([]byte, 1+n)
	copy(b, buf[:1+n])
	return b
}

// decodeValue decodes an encoding produced by encodeValue into a value of
// the type it was stored with.
func decodeValue(c Codec, b []byte) (any, error) {
	if len(b) == 0 {
		return nil, errUndecodable
	}
	p := b[1:]
	switch b[0] {
	case tagString:
		return string(p), nil
	case tagInt, tagInt64, tagInt32:
		x, n := binary.Varint(p)
		if n <= 0 || n != len(p) {
			return nil, errUndecodable
		}
		switch b[0] {
		case tagInt:
			if int64(int(x)) != x {
				return nil, errUndecodable
			}
			return int(x), nil
		case tagInt32:
			if int64(int32(x)) != x {
				return nil, errUndecodable
			}
			return int32(x), nil
		}
		return x, nil
	case tagBool:
		if len(p) != 1 || p[0] > 1 {
			return nil, errUndecodable
		}
		return p[0] == 1, nil
	case tagFloat64:
		if len(p) != 8 {
			return nil, errUndecodable
		}
		return math.Float64frombits(binary.LittleEndian.Uint64(p)), nil
	case tagBytes:
		return bytes.Clone(p[:len(p):len(p)]), nil
	case tagTime:
		var t time.Time
		if err := t.UnmarshalBinary(p); err != nil {
			return nil, fmt.Errorf("%w: %v", errUndecodable, err)
		}
		return canonicalTime(t), nil
	case tagCodec:
		var v any
		if err := safeDecode(c, p, &v); err != nil {
			return nil, fmt.Errorf("%w: %v", errUndecodable, err)
		}
		return v, nil
	}
	return nil, errUndecodable
}

// checkValue reports whether b is a well-formed encoding of one of the
// types encodeValue encodes itself, time.Time excepted: decodeValue
// decodes such an encoding without error, so it may be decoded lazily.
func checkValue(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	p := b[1:]
	switch b[0] {
	case tagString, tagBytes:
		return true
	case tagInt, tagInt64, tagInt32:
		x, n := binary.Varint(p)
		if n <= 0 || n != len(p) {
			return false
		}
		switch b[0] {
		case tagInt:
			return int64(int(x)) == x
		case tagInt32:
			return int64(int32(x)) == x
		}
		return true
	case tagBool:
		return len(p) == 1 && p[0] <= 1
	case tagFloat64:
		return len(p) == 8
	}
	return false
}

// decodeAs decodes b straight into a T when b holds a T of the types
// string, int, int64, int32, bool or float64, without boxing it in an
// interface; ok is false for any other encoding or T.
func decodeAs[T any](b []byte) (t T, ok bool) {
	if !checkValue(b) {
		return t, false
	}
	p := b[1:]
	switch x := any(&t).(type) {
	case *string:
		if b[0] == tagString {
			*x = string(p)
			return t, true
		}
	case *int:
		if b[0] == tagInt {
			v, _ := binary.Varint(p)
			*x = int(v)
			return t, true
		}
	case *int64:
		if b[0] == tagInt64 {
			*x, _ = binary.Varint(p)
			return t, true
		}
	case *int32:
		if b[0] == tagInt32 {
			v, _ := binary.Varint(p)
			*x = int32(v)
			return t, true
		}
	case *bool:
		if b[0] == tagBool {
			*x = p[0] == 1
			return t, true
		}
	case *float64:
		if b[0] == tagFloat64 {
			*x = math.Float64frombits(binary.LittleEndian.Uint64(p))
			return t, true
		}
	}
	return t, false
}

// decodeInto decodes b into *T. It uses the value decoded at load when its
// type fits, and otherwise asks the codec to decode straight into T (JSON
// needs that to produce structs).
func decodeInto[T any](c Codec, b []byte, loaded any) (T, error) {
	if t, ok := loaded.(T); ok {
		return t, nil
	}
	var t T
	if len(b) > 0 && b[0] == tagCodec {
		if err := safeDecode(c, b[1:], &t); err != nil {
			return t, fmt.Errorf("%w: %v", errUndecodable, err)
		}
		return t, nil
	}
	return t, fmt.Errorf("%w: stored %T, want %T", errUndecodable, loaded, t)
}

// safeDecode turns a panic of a third-party codec into an error: a bad
// record must never take the server down.
func safeDecode(c Codec, b []byte, ptr any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("codec panic: %v", r)
		}
	}()
	return c.Decode(b, ptr)
}

var gobRegistered sync.Map // reflect.Type -> struct{}

// registerGob registers the type of v with encoding/gob once. Types gob
// cannot register (or that another name already took) are skipped: Put
// then reports the encoding error.
func registerGob(v any) {
	if v == nil {
		return
	}
	t := reflect.TypeOf(v)
	if _, loaded := gobRegistered.LoadOrStore(t, struct{}{}); loaded {
		return
	}
	defer func() { _ = recover() }()
	gob.Register(v)
}

// canonicalTime keeps t's instant and, when its zone offset is not a whole
// number of minutes (local mean time before 1900, or a forged encoding),
// moves it to UTC: time.Time's binary encoding does not round-trip such
// offsets (the offset read back differs), so the encoding would change on
// every pass.
func canonicalTime(t time.Time) time.Time {
	if _, off := t.Zone(); off%60 != 0 {
		return t.UTC()
	}
	return t
}
