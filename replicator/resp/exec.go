package resp

import (
	"hash/fnv"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
)

// stats are the engine's counters, read by WriteMetrics.
type stats struct {
	calls        []atomic.Uint64 // per commandList index, then one for unknown commands
	errors       []atomic.Uint64
	nanos        []atomic.Uint64
	commitErrors atomic.Uint64
	conns        atomic.Int64
	accepted     atomic.Uint64
	refused      atomic.Uint64
	protoErrors  atomic.Uint64
	idleClosed   atomic.Uint64
	loading      atomic.Uint64 // commands answered LOADING
}

func (s *stats) init() {
	n := len(commandList) + 1
	s.calls = make([]atomic.Uint64, n)
	s.errors = make([]atomic.Uint64, n)
	s.nanos = make([]atomic.Uint64, n)
}

// Exec runs one command (args[0] is its name) for client c and appends
// its reply to w. It returns true when the connection must be closed
// after the reply is sent (QUIT).
func (e *Engine) Exec(c *Client, args [][]byte, w *Reply) (closeConn bool) {
	if len(args) == 0 {
		return false
	}
	w.RESP3 = c.resp3
	start := time.Now()
	cmd := commands[lower(args[0])]
	idx := len(commandList)
	if cmd != nil {
		idx = cmd.idx
	}
	mark := w.Len()
	closeConn = e.exec(c, cmd, args, w)
	e.stats.calls[idx].Add(1)
	e.stats.nanos[idx].Add(uint64(time.Since(start)))
	if len(w.B) > mark && w.B[mark] == '-' {
		e.stats.errors[idx].Add(1)
	}
	return closeConn
}

func (e *Engine) exec(c *Client, cmd *command, args [][]byte, w *Reply) bool {
	if cmd == nil {
		if c.multi {
			c.queueOK = false
		}
		w.Error(errUnknown(args))
		return false
	}
	if !c.authed && cmd.name != connAuth && cmd.name != connHello && cmd.name != connQuit && cmd.name != connReset {
		w.Error(errNoAuth)
		return false
	}
	if cmd.arity > 0 && len(args) != cmd.arity || cmd.arity < 0 && len(args) < -cmd.arity {
		if c.multi {
			c.queueOK = false
		}
		w.Error(errArity(cmd.name))
		return false
	}
	if !cmd.loadingOK && e.Loading() {
		// As Redis while it loads: refused when queued too, and the
		// transaction fails (EXECABORT).
		if c.multi {
			c.queueOK = false
		}
		e.stats.loading.Add(1)
		w.Error(errLoading)
		return false
	}
	switch cmd.name {
	case connQuit:
		w.OK()
		return true
	case connReset:
		c.multi, c.queue, c.queueOK = false, nil, true
		c.resp3, w.RESP3 = false, false
		c.Name = ""
		c.authed = e.cfg.Password == ""
		w.Simple("RESET")
		return false
	case connAuth:
		e.auth(c, args, w)
		return false
	case connHello:
		e.hello(c, args, w)
		return false
	case connMulti:
		if c.multi {
			w.Error("ERR MULTI calls can not be nested")
			return false
		}
		c.multi, c.queue, c.queueOK, c.queued = true, nil, true, 0
		w.OK()
		return false
	case connDiscard:
		if !c.multi {
			w.Error("ERR DISCARD without MULTI")
			return false
		}
		c.multi, c.queue, c.queueOK = false, nil, true
		w.OK()
		return false
	case connExec:
		if !c.multi {
			w.Error("ERR EXEC without MULTI")
			return false
		}
		e.execMulti(c, w)
		return false
	}
	if c.multi {
		size := 0
		for _, a := range args {
			size += len(a)
		}
		if len(c.queue) >= maxQueued || c.queued+size > maxQueuedBytes {
			c.queueOK = false
			w.Error("ERR MULTI queue full: at most " + strconv.Itoa(maxQueued) + " commands and " + strconv.Itoa(maxQueuedBytes>>20) + " MiB")
			return false
		}
		c.queued += size
		q := make([][]byte, len(args))
		for i, a := range args {
			q[i] = slices.Clone(a) // the reader reuses its buffer
		}
		c.queue = append(c.queue, q)
		w.Simple("QUEUED")
		return false
	}
	unlock := e.lock(cmd.keysOf(args))
	defer unlock()
	t := e.newTx()
	mark := w.Len()
	cmd.run(t, c, args, w)
	if err := t.commit(); err != nil {
		w.Truncate(mark)
		w.Error(errReply(err))
	}
	return false
}

// Bounds of a MULTI queue.
const (
	maxQueued      = 10000
	maxQueuedBytes = 16 << 20
)

// execMulti runs the queued commands as one transaction: every key they
// name is locked for the whole of it, and the writes are committed
// together at the end, one delta per key.
func (e *Engine) execMulti(c *Client, w *Reply) {
	queue, ok := c.queue, c.queueOK
	c.multi, c.queue, c.queueOK = false, nil, true
	if !ok {
		w.Error("EXECABORT Transaction discarded because of previous errors.")
		return
	}
	var keys [][]byte
	for _, args := range queue {
		keys = append(keys, commands[lower(args[0])].keysOf(args)...)
	}
	unlock := e.lock(keys)
	defer unlock()
	t := e.newTx()
	mark := w.Len()
	w.Array(len(queue))
	for _, args := range queue {
		cmd := commands[lower(args[0])]
		cmd.run(t, c, args, w)
		e.stats.calls[cmd.idx].Add(1)
	}
	if err := t.commit(); err != nil {
		w.Truncate(mark)
		w.Error(errReply(err))
	}
}

func (e *Engine) auth(c *Client, args [][]byte, w *Reply) {
	if len(args) > 3 {
		w.Error(errSyntax)
		return
	}
	if e.cfg.Password == "" {
		if len(args) == 2 {
			w.Error("ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?")
			return
		}
		if string(args[1]) == "default" {
			w.OK()
			return
		}
		w.Error(errWrongPass)
		return
	}
	var user []byte
	pass := args[1]
	if len(args) == 3 {
		user, pass = args[1], args[2]
	}
	if !e.checkPassword(user, pass) {
		w.Error(errWrongPass)
		return
	}
	c.authed = true
	w.OK()
}

// hello implements HELLO [protover [AUTH username password] [SETNAME name]].
func (e *Engine) hello(c *Client, args [][]byte, w *Reply) {
	proto := 0
	if len(args) >= 2 {
		n, ok := parseInt(args[1])
		if !ok {
			w.Error("ERR Protocol version is not an integer or out of range")
			return
		}
		if n != 2 && n != 3 {
			w.Error("NOPROTO unsupported protocol version")
			return
		}
		proto = int(n)
	}
	authed := c.authed
	var name []byte
	for i := 2; i < len(args); i++ {
		switch lower(args[i]) {
		case "auth":
			if i+2 >= len(args) {
				w.Error("ERR Syntax error in HELLO option '" + string(trunc(args[i])) + "'")
				return
			}
			if e.cfg.Password == "" && string(args[i+1]) == "default" || e.cfg.Password != "" && e.checkPassword(args[i+1], args[i+2]) {
				authed = true
			} else {
				w.Error(errWrongPass)
				return
			}
			i += 2
		case "setname":
			if i+1 >= len(args) {
				w.Error("ERR Syntax error in HELLO option '" + string(trunc(args[i])) + "'")
				return
			}
			name = args[i+1]
			i++
		default:
			w.Error("ERR Syntax error in HELLO option '" + string(trunc(args[i])) + "'")
			return
		}
	}
	if !authed {
		w.Error("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time")
		return
	}
	c.authed = true
	if name != nil {
		c.Name = string(name)
	}
	if proto != 0 {
		c.resp3 = proto == 3
		w.RESP3 = c.resp3
	}
	p := 2
	if c.resp3 {
		p = 3
	}
	w.Map(7)
	w.BulkString("server")
	w.BulkString("redis")
	w.BulkString("version")
	w.BulkString(Version)
	w.BulkString("proto")
	w.Int(int64(p))
	w.BulkString("id")
	w.Int(c.ID)
	w.BulkString("mode")
	w.BulkString("standalone")
	w.BulkString("role")
	w.BulkString("master")
	w.BulkString("modules")
	w.Array(0)
}

// scanHash orders keys for SCAN's cursor: 63 bits of FNV-1a, never 0.
func scanHash(k string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(k))
	return h.Sum64()>>1 | 1
}

// scanMinBatch is the fewest keys one SCAN call looks at (COUNT is a
// hint): each call walks every record, so few large steps cost less.
const scanMinBatch = 1000

// cmdScan implements SCAN cursor [MATCH pattern] [COUNT count] [TYPE type].
// The cursor is a position in the order of scanHash, so a key present for
// the whole iteration is returned at least once, as Redis guarantees.
func cmdScan(t *tx, c *Client, args [][]byte, w *Reply) {
	cursor, err := strconv.ParseUint(string(args[1]), 10, 64)
	if err != nil {
		w.Error("ERR invalid cursor")
		return
	}
	count := int64(10)
	var pat, typ string
	for i := 2; i < len(args); i += 2 {
		if i+1 >= len(args) {
			w.Error(errSyntax)
			return
		}
		switch lower(args[i]) {
		case "match":
			pat = string(args[i+1])
		case "count":
			n, ok := parseInt(args[i+1])
			if !ok {
				w.Error(errNotInt)
				return
			}
			if n < 1 {
				w.Error(errSyntax)
				return
			}
			count = n
		case "type":
			typ = lower(args[i+1])
		default:
			w.Error(errSyntax)
			return
		}
	}
	batch := int(max(count, scanMinBatch))
	type hk struct {
		h uint64
		k string
	}
	var cand []hk
	t.e.rangeKeys(t, func(k string) bool {
		if h := scanHash(k); h >= cursor {
			cand = append(cand, hk{h, k})
		}
		return true
	})
	slices.SortFunc(cand, func(a, b hk) int {
		switch {
		case a.h < b.h:
			return -1
		case a.h > b.h:
			return 1
		}
		return 0
	})
	next := uint64(0)
	if len(cand) > batch {
		// Keys of equal hash go together, so the next cursor splits none.
		n := batch
		for n < len(cand) && cand[n].h == cand[n-1].h {
			n++
		}
		if n < len(cand) {
			next = cand[n].h
		}
		cand = cand[:n]
	}
	var out []string
	for _, x := range cand {
		if pat != "" && !match(pat, x.k) {
			continue
		}
		if typ != "" && t.key([]byte(x.k)).kind().String() != typ {
			continue
		}
		out = append(out, x.k)
	}
	w.Array(2)
	w.BulkString(strconv.FormatUint(next, 10))
	w.Array(len(out))
	for _, k := range out {
		w.BulkString(k)
	}
}
