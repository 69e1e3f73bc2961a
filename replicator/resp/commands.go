package resp

import (
	"bytes"
	"crypto/subtle"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// command is one entry of the command table.
type command struct {
	name  string
	arity int // Redis's convention: n exactly n arguments (name included), -n at least n
	// Key positions (Redis's first, last, step): for locking, and for
	// COMMAND's reply. last -1 means the last argument.
	first, last, step int
	flags             []string
	// loadingOK: served while the store is not ready (Config.Ready),
	// "loading" in its flags; every command that reads or writes keys is
	// refused with LOADING then.
	loadingOK bool
	run       func(t *tx, c *Client, args [][]byte, w *Reply)
	idx       int // index in the metrics
}

// The connection-level commands that run outside a transaction.
const (
	connAuth    = "auth"
	connHello   = "hello"
	connQuit    = "quit"
	connReset   = "reset"
	connMulti   = "multi"
	connExec    = "exec"
	connDiscard = "discard"
)

var commands map[string]*command

// commandList is the table in a stable order (metrics, COMMAND).
var commandList []*command

func init() {
	w, r, f := []string{"write"}, []string{"readonly"}, []string{"fast"}
	rf := []string{"readonly", "fast"}
	wf := []string{"write", "fast"}
	list := []*command{
		// connection
		{name: "ping", arity: -1, flags: f, run: cmdPing},
		{name: "echo", arity: 2, flags: f, run: cmdEcho},
		{name: connAuth, arity: -2, flags: f},
		{name: connHello, arity: -1, flags: f},
		{name: "select", arity: 2, flags: f, run: cmdSelect},
		{name: "client", arity: -2, run: cmdClient},
		{name: "command", arity: -1, run: cmdCommand},
		{name: "info", arity: -1, run: cmdInfo},
		{name: connQuit, arity: -1, flags: f},
		{name: connReset, arity: 1, flags: f},
		{name: connMulti, arity: 1, flags: f},
		{name: connExec, arity: 1},
		{name: connDiscard, arity: 1, flags: f},
		// strings
		{name: "get", arity: 2, first: 1, last: 1, step: 1, flags: rf, run: cmdGet},
		{name: "set", arity: -3, first: 1, last: 1, step: 1, flags: w, run: cmdSet},
		{name: "setex", arity: 4, first: 1, last: 1, step: 1, flags: w, run: cmdSetex},
		{name: "psetex", arity: 4, first: 1, last: 1, step: 1, flags: w, run: cmdSetex},
		{name: "setnx", arity: 3, first: 1, last: 1, step: 1, flags: wf, run: cmdSetnx},
		{name: "getdel", arity: 2, first: 1, last: 1, step: 1, flags: wf, run: cmdGetdel},
		{name: "getex", arity: -2, first: 1, last: 1, step: 1, flags: wf, run: cmdGetex},
		{name: "mget", arity: -2, first: 1, last: -1, step: 1, flags: rf, run: cmdMget},
		// keys
		{name: "del", arity: -2, first: 1, last: -1, step: 1, flags: w, run: cmdDel},
		{name: "unlink", arity: -2, first: 1, last: -1, step: 1, flags: wf, run: cmdDel},
		{name: "exists", arity: -2, first: 1, last: -1, step: 1, flags: rf, run: cmdExists},
		{name: "expire", arity: -3, first: 1, last: 1, step: 1, flags: wf, run: cmdExpire},
		{name: "pexpire", arity: -3, first: 1, last: 1, step: 1, flags: wf, run: cmdExpire},
		{name: "expireat", arity: -3, first: 1, last: 1, step: 1, flags: wf, run: cmdExpire},
		{name: "pexpireat", arity: -3, first: 1, last: 1, step: 1, flags: wf, run: cmdExpire},
		{name: "ttl", arity: 2, first: 1, last: 1, step: 1, flags: rf, run: cmdTTL},
		{name: "pttl", arity: 2, first: 1, last: 1, step: 1, flags: rf, run: cmdTTL},
		{name: "persist", arity: 2, first: 1, last: 1, step: 1, flags: wf, run: cmdPersist},
		{name: "type", arity: 2, first: 1, last: 1, step: 1, flags: rf, run: cmdType},
		{name: "rename", arity: 3, first: 1, last: 2, step: 1, flags: w, run: cmdRename},
		{name: "scan", arity: -2, flags: r, run: cmdScan},
		{name: "keys", arity: 2, flags: r, run: cmdKeys},
		{name: "dbsize", arity: 1, flags: rf, run: cmdDbsize},
		// hashes
		{name: "hset", arity: -4, first: 1, last: 1, step: 1, flags: wf, run: cmdHset},
		{name: "hmset", arity: -4, first: 1, last: 1, step: 1, flags: wf, run: cmdHset},
		{name: "hget", arity: 3, first: 1, last: 1, step: 1, flags: rf, run: cmdHget},
		{name: "hmget", arity: -3, first: 1, last: 1, step: 1, flags: rf, run: cmdHmget},
		{name: "hgetall", arity: 2, first: 1, last: 1, step: 1, flags: r, run: cmdHgetall},
		{name: "hdel", arity: -3, first: 1, last: 1, step: 1, flags: wf, run: cmdHdel},
		{name: "hexists", arity: 3, first: 1, last: 1, step: 1, flags: rf, run: cmdHexists},
		{name: "hlen", arity: 2, first: 1, last: 1, step: 1, flags: rf, run: cmdHlen},
		{name: "hkeys", arity: 2, first: 1, last: 1, step: 1, flags: r, run: cmdHkeys},
		{name: "hincrby", arity: 4, first: 1, last: 1, step: 1, flags: wf, run: cmdHincrby},
	}
	commands = make(map[string]*command, len(list))
	for i, c := range list {
		c.idx = i
		if slices.Contains(servedLoading, c.name) {
			c.loadingOK = true
			c.flags = append(slices.Clone(c.flags), "loading")
		}
		commands[c.name] = c
	}
	commandList = list
}

// servedLoading are the commands served while the store is not ready
// (Config.Ready): the connection commands, none that reads or writes keys.
// Redis flags the same ones "loading", except PING and ECHO, which it
// refuses then; hanode answers them, for liveness checks (readiness is the
// admin API's /readyz). A command not listed is refused while loading.
var servedLoading = []string{"ping", "echo", connAuth, connHello, "select", "client", "command", "info",
	connQuit, connReset, connMulti, connExec, connDiscard}

// keysOf returns the key arguments of a command (for locking).
func (cmd *command) keysOf(args [][]byte) [][]byte {
	if cmd.first == 0 || len(args) <= cmd.first {
		return nil
	}
	last := cmd.last
	if last < 0 {
		last = len(args) + last
	}
	last = min(last, len(args)-1)
	var keys [][]byte
	for i := cmd.first; i <= last; i += cmd.step {
		keys = append(keys, args[i])
	}
	return keys
}

// Error replies, as Redis words them.
const (
	errWrongType = "WRONGTYPE Operation against a key holding the wrong kind of value"
	errSyntax    = "ERR syntax error"
	errNotInt    = "ERR value is not an integer or out of range"
	errNoAuth    = "NOAUTH Authentication required."
	errWrongPass = "WRONGPASS invalid username-password pair or user is disabled."
	errLoading   = "LOADING hanode is loading the cluster's sessions"
)

func errArity(name string) string {
	return "ERR wrong number of arguments for '" + name + "' command"
}

func errUnknown(args [][]byte) string {
	var b strings.Builder
	b.WriteString("ERR unknown command '")
	b.Write(trunc(args[0]))
	b.WriteString("', with args beginning with: ")
	for _, a := range args[1:] {
		if b.Len() > 256 {
			break
		}
		b.WriteByte('\'')
		b.Write(trunc(a))
		b.WriteString("' ")
	}
	return b.String()
}

func trunc(b []byte) []byte {
	if len(b) > 128 {
		return b[:128]
	}
	return b
}

func lower(b []byte) string { return strings.ToLower(string(b)) }

func parseInt(b []byte) (int64, bool) {
	n, err := strconv.ParseInt(string(b), 10, 64)
	return n, err == nil
}

// ---- connection commands

func cmdPing(t *tx, c *Client, args [][]byte, w *Reply) {
	switch len(args) {
	case 1:
		w.Simple("PONG")
	case 2:
		w.Bulk(args[1])
	default:
		w.Error(errArity("ping"))
	}
}

func cmdEcho(t *tx, c *Client, args [][]byte, w *Reply) { w.Bulk(args[1]) }

func cmdSelect(t *tx, c *Client, args [][]byte, w *Reply) {
	n, ok := parseInt(args[1])
	switch {
	case !ok:
		w.Error(errNotInt)
	case n != 0:
		w.Error("ERR hanode serves database 0 only")
	default:
		w.OK()
	}
}

func cmdClient(t *tx, c *Client, args [][]byte, w *Reply) {
	switch lower(args[1]) {
	case "setname":
		if len(args) != 3 {
			w.Error(errArity("client|setname"))
			return
		}
		for _, ch := range args[2] {
			if ch <= ' ' || ch > '~' {
				w.Error("ERR Client names cannot contain spaces, newlines or special characters.")
				return
			}
		}
		c.Name = string(args[2])
		w.OK()
	case "getname":
		if len(args) != 2 {
			w.Error(errArity("client|getname"))
			return
		}
		if c.Name == "" {
			w.Null()
			return
		}
		w.BulkString(c.Name)
	case "id":
		if len(args) != 2 {
			w.Error(errArity("client|id"))
			return
		}
		w.Int(c.ID)
	case "setinfo":
		if len(args) != 4 {
			w.Error(errArity("client|setinfo"))
			return
		}
		switch lower(args[2]) {
		case "lib-name":
			c.LibName = string(args[3])
		case "lib-ver":
			c.LibVer = string(args[3])
		default:
			w.Error("ERR Unrecognized option '" + string(trunc(args[2])) + "'")
			return
		}
		w.OK()
	default:
		w.Error("ERR unknown subcommand '" + string(trunc(args[1])) + "'. Try CLIENT HELP.")
	}
}

func cmdCommand(t *tx, c *Client, args [][]byte, w *Reply) {
	if len(args) == 1 {
		w.Array(len(commandList))
		for _, cmd := range commandList {
			writeCommandInfo(cmd, w)
		}
		return
	}
	switch lower(args[1]) {
	case "count":
		w.Int(int64(len(commandList)))
	case "docs":
		// Enough for clients that probe it: no documentation, and an
		// empty map means "nothing to say" for every command asked.
		w.Map(0)
	case "info":
		w.Array(len(args) - 2)
		for _, a := range args[2:] {
			if cmd := commands[lower(a)]; cmd != nil {
				writeCommandInfo(cmd, w)
			} else {
				w.NullArray()
			}
		}
	default:
		w.Error("ERR unknown subcommand '" + string(trunc(args[1])) + "'. Try COMMAND HELP.")
	}
}

func writeCommandInfo(cmd *command, w *Reply) {
	w.Array(6)
	w.BulkString(cmd.name)
	w.Int(int64(cmd.arity))
	w.Set(len(cmd.flags))
	for _, f := range cmd.flags {
		w.Simple(f)
	}
	w.Int(int64(cmd.first))
	w.Int(int64(cmd.last))
	w.Int(int64(cmd.step))
}

// Version is the Redis version hanode reports (INFO, HELLO): the one
// whose commands and replies it follows.
const Version = "7.0.15"

func cmdInfo(t *tx, c *Client, args [][]byte, w *Reply) {
	var b strings.Builder
	b.WriteString("# Server\r\nredis_version:" + Version + "\r\nredis_mode:standalone\r\nhanode:1\r\n")
	b.WriteString("\r\n# Clients\r\nconnected_clients:" + strconv.FormatInt(t.e.stats.conns.Load(), 10) + "\r\n")
	loading := "0"
	if t.e.Loading() {
		loading = "1"
	}
	b.WriteString("\r\n# Persistence\r\nloading:" + loading + "\r\n")
	b.WriteString("\r\n# Replication\r\nrole:master\r\n")
	n := 0
	t.e.rangeKeys(t, func(string) bool { n++; return true })
	b.WriteString("\r\n# Keyspace\r\n")
	if n > 0 {
		b.WriteString("db0:keys=" + strconv.Itoa(n) + ",expires=0,avg_ttl=0\r\n")
	}
	w.Verbatim(b.String())
}

// ---- strings

func cmdGet(t *tx, c *Client, args [][]byte, w *Reply) {
	en := t.key(args[1])
	switch en.kind() {
	case kindNone:
		w.Null()
	case kindString:
		v, _ := en.get(attrString)
		w.Bulk(v)
	default:
		w.Error(errWrongType)
	}
}

// expiry options shared by SET and GETEX.
type setOpts struct {
	nx, xx, keepTTL, get, persist bool
	deadline                      int64 // unix nanoseconds; 0 none
	hasExp                        bool
}

// parseSetOpts parses the options of SET or GETEX (name): an expiry
// (EX, PX, EXAT, PXAT) and the flags named in flags. It returns the error
// to answer, or "".
func (t *tx) parseSetOpts(name string, args [][]byte, flags string) (setOpts, string) {
	var o setOpts
	for i := 0; i < len(args); i++ {
		a := lower(args[i])
		if a != "ex" && a != "px" && a != "exat" && a != "pxat" && !slices.Contains(strings.Fields(flags), a) {
			return o, errSyntax
		}
		switch a {
		case "nx":
			o.nx = true
		case "xx":
			o.xx = true
		case "get":
			o.get = true
		case "keepttl":
			o.keepTTL = true
		case "persist":
			if o.persist {
				return o, errSyntax
			}
			o.persist = true
		default: // an expiry
			if o.hasExp || i+1 >= len(args) {
				return o, errSyntax
			}
			i++
			d, msg := t.parseExpiry(name, a, args[i])
			if msg != "" {
				return o, msg
			}
			o.deadline, o.hasExp = d, true
		}
	}
	if o.nx && o.xx || (o.keepTTL || o.persist) && o.hasExp {
		return o, errSyntax
	}
	return o, ""
}

func (t *tx) parseExpiry(name string, unit string, v []byte) (int64, string) {
	n, ok := parseInt(v)
	if !ok {
		return 0, errNotInt
	}
	if n <= 0 {
		return 0, "ERR invalid expire time in '" + name + "' command"
	}
	var d int64
	ms := t.now.UnixMilli()
	switch unit {
	case "ex":
		if n > math.MaxInt64/1000-ms {
			return 0, "ERR invalid expire time in '" + name + "' command"
		}
		d = ms + n*1000
	case "px":
		if n > math.MaxInt64-ms {
			return 0, "ERR invalid expire time in '" + name + "' command"
		}
		d = ms + n
	case "exat":
		if n > math.MaxInt64/1000 {
			return 0, "ERR invalid expire time in '" + name + "' command"
		}
		d = n * 1000
	case "pxat":
		d = n
	}
	if d > math.MaxInt64/int64(time.Millisecond) {
		return 0, "ERR invalid expire time in '" + name + "' command"
	}
	return d * int64(time.Millisecond), ""
}

func cmdSet(t *tx, c *Client, args [][]byte, w *Reply) {
	o, msg := t.parseSetOpts("set", args[3:], "nx xx get keepttl")
	if msg != "" {
		w.Error(msg)
		return
	}
	if !t.e.checkValue(args[2], w) {
		return
	}
	en := t.key(args[1])
	k := en.kind()
	if o.get && k == kindHash {
		w.Error(errWrongType)
		return
	}
	old, _ := en.get(attrString)
	if o.nx && k != kindNone || o.xx && k == kindNone {
		if o.get {
			writeOld(old, k, w)
		} else {
			w.Null()
		}
		return
	}
	deadline := en.deadline
	if !o.keepTTL || k == kindNone {
		deadline = o.deadline
	}
	t.writeString(en, args[2], deadline)
	if o.get {
		writeOld(old, k, w)
		return
	}
	w.OK()
}

func writeOld(old []byte, k kind, w *Reply) {
	if k == kindString {
		w.Bulk(old)
	} else {
		w.Null()
	}
}

// writeString makes en a string key holding v.
func (t *tx) writeString(en *entry, v []byte, deadline int64) {
	if en.kind() == kindHash {
		en.clear()
	}
	if en.cleared && en.over == nil {
		en.over = map[string][]byte{}
	}
	en.set(attrString, v)
	en.setDeadline(deadline)
}

func (e *Engine) checkValue(v []byte, w *Reply) bool {
	if len(v) > e.cfg.MaxValueBytes {
		w.Error("ERR value of " + strconv.Itoa(len(v)) + " bytes is over the limit of " + strconv.Itoa(e.cfg.MaxValueBytes) + " bytes")
		return false
	}
	return true
}

func cmdSetex(t *tx, c *Client, args [][]byte, w *Reply) {
	name := lower(args[0])
	unit := "ex"
	if name == "psetex" {
		unit = "px"
	}
	d, msg := t.parseExpiry(name, unit, args[2])
	if msg != "" {
		w.Error(msg)
		return
	}
	if !t.e.checkValue(args[3], w) {
		return
	}
	t.writeString(t.key(args[1]), args[3], d)
	w.OK()
}

func cmdSetnx(t *tx, c *Client, args [][]byte, w *Reply) {
	if !t.e.checkValue(args[2], w) {
		return
	}
	en := t.key(args[1])
	if en.kind() != kindNone {
		w.Int(0)
		return
	}
	t.writeString(en, args[2], 0)
	w.Int(1)
}

func cmdGetdel(t *tx, c *Client, args [][]byte, w *Reply) {
	en := t.key(args[1])
	switch en.kind() {
	case kindNone:
		w.Null()
	case kindString:
		v, _ := en.get(attrString)
		w.Bulk(v)
		en.clear()
	default:
		w.Error(errWrongType)
	}
}

func cmdGetex(t *tx, c *Client, args [][]byte, w *Reply) {
	o, msg := t.parseSetOpts("getex", args[2:], "persist")
	if msg != "" {
		w.Error(msg)
		return
	}
	en := t.key(args[1])
	switch en.kind() {
	case kindNone:
		w.Null()
		return
	case kindHash:
		w.Error(errWrongType)
		return
	}
	v, _ := en.get(attrString)
	w.Bulk(v)
	switch {
	case o.persist:
		en.setDeadline(0)
	case o.hasExp && o.deadline <= t.nowNs:
		en.clear()
	case o.hasExp:
		en.setDeadline(o.deadline)
	}
}

func cmdMget(t *tx, c *Client, args [][]byte, w *Reply) {
	w.Array(len(args) - 1)
	for _, k := range args[1:] {
		en := t.key(k)
		if v, ok := en.get(attrString); ok {
			w.Bulk(v)
		} else {
			w.Null()
		}
	}
}

// ---- keys

func cmdDel(t *tx, c *Client, args [][]byte, w *Reply) {
	n := 0
	for _, k := range args[1:] {
		en := t.key(k)
		if en.kind() != kindNone {
			en.clear()
			n++
		}
	}
	w.Int(int64(n))
}

func cmdExists(t *tx, c *Client, args [][]byte, w *Reply) {
	n := 0
	for _, k := range args[1:] {
		if t.key(k).kind() != kindNone {
			n++
		}
	}
	w.Int(int64(n))
}

func cmdExpire(t *tx, c *Client, args [][]byte, w *Reply) {
	name := lower(args[0])
	n, ok := parseInt(args[2])
	if !ok {
		w.Error(errNotInt)
		return
	}
	var nx, xx, gt, lt bool
	for _, a := range args[3:] {
		switch lower(a) {
		case "nx":
			nx = true
		case "xx":
			xx = true
		case "gt":
			gt = true
		case "lt":
			lt = true
		default:
			w.Error("ERR Unsupported option " + string(trunc(a)))
			return
		}
	}
	if nx && (xx || gt || lt) {
		w.Error("ERR NX and XX, GT or LT options at the same time are not compatible")
		return
	}
	if gt && lt {
		w.Error("ERR GT and LT options at the same time are not compatible")
		return
	}
	var ms int64
	now := t.now.UnixMilli()
	invalid := "ERR invalid expire time in '" + name + "' command"
	switch name {
	case "expire":
		if n > math.MaxInt64/1000-now || n < math.MinInt64/1000+now {
			w.Error(invalid)
			return
		}
		ms = now + n*1000
	case "pexpire":
		if n > math.MaxInt64-now || n < math.MinInt64+now {
			w.Error(invalid)
			return
		}
		ms = now + n
	case "expireat":
		if n > math.MaxInt64/1000 || n < math.MinInt64/1000 {
			w.Error(invalid)
			return
		}
		ms = n * 1000
	default:
		ms = n
	}
	if ms > math.MaxInt64/int64(time.Millisecond) {
		w.Error(invalid)
		return
	}
	en := t.key(args[1])
	if en.kind() == kindNone {
		w.Int(0)
		return
	}
	d := max(ms, 0) * int64(time.Millisecond)
	cur := en.deadline
	switch {
	case nx && cur != 0, xx && cur == 0,
		gt && (cur == 0 || d <= cur), lt && cur != 0 && d >= cur:
		w.Int(0)
		return
	}
	if d <= t.nowNs {
		en.clear()
	} else {
		en.setDeadline(d)
	}
	w.Int(1)
}

func cmdTTL(t *tx, c *Client, args [][]byte, w *Reply) {
	en := t.key(args[1])
	switch {
	case en.kind() == kindNone:
		w.Int(-2)
	case en.deadline == 0:
		w.Int(-1)
	default:
		ms := (en.deadline - t.nowNs + int64(time.Millisecond) - 1) / int64(time.Millisecond)
		if ms < 0 {
			ms = 0
		}
		if lower(args[0]) == "ttl" {
			w.Int((ms + 500) / 1000)
		} else {
			w.Int(ms)
		}
	}
}

func cmdPersist(t *tx, c *Client, args [][]byte, w *Reply) {
	en := t.key(args[1])
	if en.kind() == kindNone || en.deadline == 0 {
		w.Int(0)
		return
	}
	en.setDeadline(0)
	w.Int(1)
}

func cmdType(t *tx, c *Client, args [][]byte, w *Reply) {
	w.Simple(t.key(args[1]).kind().String())
}

func cmdRename(t *tx, c *Client, args [][]byte, w *Reply) {
	src := t.key(args[1])
	if src.kind() == kindNone {
		w.Error("ERR no such key")
		return
	}
	if bytes.Equal(args[1], args[2]) {
		w.OK()
		return
	}
	dst := t.key(args[2])
	dst.clear()
	dst.over = map[string][]byte{}
	src.each(func(a string, v []byte) { dst.set(a, v) })
	dst.setDeadline(src.deadline)
	src.clear()
	w.OK()
}

// rangeKeys calls fn with every existing key (as the transaction sees
// the store, without its uncommitted changes) until fn returns false.
func (e *Engine) rangeKeys(t *tx, fn func(key string) bool) {
	e.store.Range(func(id string) bool {
		if len(id) < len(recordIDPrefix) || id[:len(recordIDPrefix)] != recordIDPrefix {
			return true
		}
		key := id[len(recordIDPrefix):]
		s := e.store.Get(id)
		if s == nil || s.Deadline > 0 && s.Deadline <= t.nowNs {
			return true
		}
		en := entry{key: key, phys: s}
		if en.kind() == kindNone {
			return true
		}
		return fn(key)
	})
}

var recordIDPrefix = recordID("")

func cmdKeys(t *tx, c *Client, args [][]byte, w *Reply) {
	pat := string(args[1])
	var keys []string
	t.e.rangeKeys(t, func(k string) bool {
		if pat == "*" || match(pat, k) {
			keys = append(keys, k)
		}
		return true
	})
	sort.Strings(keys)
	w.Array(len(keys))
	for _, k := range keys {
		w.BulkString(k)
	}
}

func cmdDbsize(t *tx, c *Client, args [][]byte, w *Reply) {
	n := 0
	t.e.rangeKeys(t, func(string) bool { n++; return true })
	w.Int(int64(n))
}

// ---- hashes

func (t *tx) hash(k []byte, w *Reply) (*entry, bool) {
	en := t.key(k)
	if en.kind() == kindString {
		w.Error(errWrongType)
		return nil, false
	}
	return en, true
}

func cmdHset(t *tx, c *Client, args [][]byte, w *Reply) {
	if len(args)%2 != 0 {
		w.Error(errArity(lower(args[0])))
		return
	}
	for i := 3; i < len(args); i += 2 {
		if !t.e.checkValue(args[i], w) {
			return
		}
	}
	en, ok := t.hash(args[1], w)
	if !ok {
		return
	}
	if en.kind() == kindNone {
		en.setDeadline(0)
	}
	n := 0
	for i := 2; i < len(args); i += 2 {
		a := hashPrefix + string(args[i])
		if _, ok := en.get(a); !ok {
			n++
		}
		en.set(a, args[i+1])
	}
	if lower(args[0]) == "hmset" {
		w.OK()
		return
	}
	w.Int(int64(n))
}

func cmdHget(t *tx, c *Client, args [][]byte, w *Reply) {
	en, ok := t.hash(args[1], w)
	if !ok {
		return
	}
	if v, ok := en.get(hashPrefix + string(args[2])); ok {
		w.Bulk(v)
		return
	}
	w.Null()
}

func cmdHmget(t *tx, c *Client, args [][]byte, w *Reply) {
	en, ok := t.hash(args[1], w)
	if !ok {
		return
	}
	w.Array(len(args) - 2)
	for _, f := range args[2:] {
		if v, ok := en.get(hashPrefix + string(f)); ok {
			w.Bulk(v)
		} else {
			w.Null()
		}
	}
}

type field struct {
	name string
	v    []byte
}

func (en *entry) fields() []field {
	var fs []field
	en.each(func(a string, v []byte) {
		if len(a) > 0 && a[0] == hashPrefix[0] {
			fs = append(fs, field{a[1:], v})
		}
	})
	sort.Slice(fs, func(i, j int) bool { return fs[i].name < fs[j].name }) // a stable order for clients and tests
	return fs
}

func cmdHgetall(t *tx, c *Client, args [][]byte, w *Reply) {
	en, ok := t.hash(args[1], w)
	if !ok {
		return
	}
	fs := en.fields()
	w.Map(len(fs))
	for _, f := range fs {
		w.BulkString(f.name)
		w.Bulk(f.v)
	}
}

func cmdHkeys(t *tx, c *Client, args [][]byte, w *Reply) {
	en, ok := t.hash(args[1], w)
	if !ok {
		return
	}
	fs := en.fields()
	w.Array(len(fs))
	for _, f := range fs {
		w.BulkString(f.name)
	}
}

func cmdHlen(t *tx, c *Client, args [][]byte, w *Reply) {
	en, ok := t.hash(args[1], w)
	if !ok {
		return
	}
	w.Int(int64(len(en.fields())))
}

func cmdHdel(t *tx, c *Client, args [][]byte, w *Reply) {
	en, ok := t.hash(args[1], w)
	if !ok {
		return
	}
	n := 0
	for _, f := range args[2:] {
		a := hashPrefix + string(f)
		if _, ok := en.get(a); ok {
			en.del(a)
			n++
		}
	}
	w.Int(int64(n))
}

func cmdHexists(t *tx, c *Client, args [][]byte, w *Reply) {
	en, ok := t.hash(args[1], w)
	if !ok {
		return
	}
	if _, ok := en.get(hashPrefix + string(args[2])); ok {
		w.Int(1)
		return
	}
	w.Int(0)
}

func cmdHincrby(t *tx, c *Client, args [][]byte, w *Reply) {
	incr, ok := parseInt(args[3])
	if !ok {
		w.Error(errNotInt)
		return
	}
	en, ok := t.hash(args[1], w)
	if !ok {
		return
	}
	if en.kind() == kindNone {
		en.setDeadline(0)
	}
	a := hashPrefix + string(args[2])
	var cur int64
	if v, ok := en.get(a); ok {
		if cur, ok = parseInt(v); !ok {
			w.Error("ERR hash value is not an integer")
			return
		}
	}
	if incr > 0 && cur > math.MaxInt64-incr || incr < 0 && cur < math.MinInt64-incr {
		w.Error("ERR increment or decrement would overflow")
		return
	}
	cur += incr
	en.set(a, strconv.AppendInt(nil, cur, 10))
	w.Int(cur)
}

// checkPassword compares in constant time.
func (e *Engine) checkPassword(user, pass []byte) bool {
	if user != nil && string(user) != "default" {
		return false
	}
	return subtle.ConstantTimeCompare(pass, []byte(e.cfg.Password)) == 1
}
