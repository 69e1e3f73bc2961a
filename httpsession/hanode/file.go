package hanode

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// The config file is TOML (https://toml.io), parsed by
// github.com/pelletier/go-toml/v2, whose parser reports every key and
// value with its place in the file: errors and `hanode config check`
// name file:line. Settings are top-level keys named like the flags;
// tables are refused. A list setting takes an array (`peers = ["a", "b"]`)
// or a comma-separated string (`peers = "a,b"`). For compatibility with
// the files of earlier versions, a bare word that is not a TOML value
// (`listen = 0.0.0.0:8080`, `sync-timeout = 2s`) is read as a string.

// maxConfigFile bounds the size of a config file.
const maxConfigFile = 1 << 20

// fileEntry is one `key = value` line of a config file.
type fileEntry struct {
	raw  string // the value as a flag would give it; a list is comma-joined
	list bool   // the value was a TOML array
	line int
}

// parseConfigFile reads a config file: top-level `key = value` pairs
// whose keys are the flag names.
func parseConfigFile(path string, r io.Reader) (map[string]fileEntry, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxConfigFile+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrConfig, path, err)
	}
	if len(data) > maxConfigFile {
		return nil, fmt.Errorf("%w: %s: larger than %d bytes", ErrConfig, path, maxConfigFile)
	}
	data = bytes.TrimPrefix(data, []byte("\ufeff"))
	out, err := parseTOML(path, data)
	if err == nil {
		return out, nil
	}
	var syntax *syntaxError
	if !errors.As(err, &syntax) {
		return nil, err
	}
	// A file of earlier versions may hold bare words (listen = :8080):
	// quote them and try again. Lines keep their numbers, so an error then
	// points at a line that is wrong either way.
	if legacy, ok := quoteBareWords(data); ok {
		return parseTOML(path, legacy)
	}
	return nil, err
}

// syntaxError is a file that is not TOML.
type syntaxError struct{ err error }

func (e *syntaxError) Error() string { return e.err.Error() }
func (e *syntaxError) Unwrap() error { return e.err }

func parseTOML(path string, data []byte) (map[string]fileEntry, error) {
	out := make(map[string]fileEntry)
	var p unstable.Parser
	p.Reset(data)
	lineOf := func(r unstable.Range) int { return p.Shape(r).Start.Line }
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			line := lineOf(e.Raw)
			if k := e.Key(); k.Next() {
				line = lineOf(k.Node().Raw)
			}
			return nil, fmt.Errorf("%w: %s:%d: tables are not supported; write key = value lines", ErrConfig, path, line)
		case unstable.KeyValue:
		default:
			continue
		}
		var parts []string
		line := 0
		for k := e.Key(); k.Next(); {
			n := k.Node()
			if line == 0 {
				line = lineOf(n.Raw)
			}
			parts = append(parts, string(n.Data))
		}
		key := strings.Join(parts, ".")
		if _, ok := lookupOption(key); !ok || len(parts) != 1 {
			hint := ""
			if s := suggest(key); s != "" {
				hint = fmt.Sprintf(" (did you mean %q?)", s)
			}
			return nil, fmt.Errorf("%w: %s:%d: unknown key %q%s", ErrConfig, path, line, key, hint)
		}
		if prev, dup := out[key]; dup {
			return nil, fmt.Errorf("%w: %s:%d: %s is already set on line %d", ErrConfig, path, line, key, prev.line)
		}
		v := e.Value()
		ent := fileEntry{line: line}
		switch v.Kind {
		case unstable.Array:
			var items []string
			for it := v.Children(); it.Next(); {
				s, err := scalarText(&p, it.Node())
				if err != nil {
					return nil, fmt.Errorf("%w: %s:%d: %s: list item: %v", ErrConfig, path, line, key, err)
				}
				if strings.Contains(s, ",") {
					return nil, fmt.Errorf("%w: %s:%d: %s: list item %q contains a comma", ErrConfig, path, line, key, s)
				}
				items = append(items, s)
			}
			ent.raw, ent.list = strings.Join(items, ","), true
		default:
			s, err := scalarText(&p, v)
			if err != nil {
				return nil, fmt.Errorf("%w: %s:%d: %s: %v", ErrConfig, path, line, key, err)
			}
			ent.raw = s
		}
		out[key] = ent
	}
	if err := p.Error(); err != nil {
		return nil, &syntaxError{fmt.Errorf("%w: %s:%d: %s", ErrConfig, path, errorLine(&p, err), describeSyntax(&p, err))}
	}
	return out, nil
}

// scalarText returns a value as a flag would give it: a string's
// content, the TOML text of a number, boolean or date.
func scalarText(p *unstable.Parser, v *unstable.Node) (string, error) {
	switch v.Kind {
	case unstable.String:
		return string(v.Data), nil
	case unstable.Integer:
		// 1_000, 0x10, +3: as the decimal a flag would give.
		n, err := strconv.ParseInt(string(v.Data), 0, 64)
		if err != nil {
			return "", fmt.Errorf("%s is not an integer", v.Data)
		}
		return strconv.FormatInt(n, 10), nil
	case unstable.Bool, unstable.Float,
		unstable.LocalDate, unstable.LocalTime, unstable.LocalDateTime, unstable.DateTime:
		return string(v.Data), nil
	case unstable.Array:
		return "", errors.New("a nested list is not a setting value")
	case unstable.InlineTable:
		return "", errors.New("a table is not a setting value")
	}
	return "", fmt.Errorf("unexpected %s value", v.Kind)
}

// errorLine returns the line a parser error points at.
func errorLine(p *unstable.Parser, err error) int {
	var pe *unstable.ParserError
	if !errors.As(err, &pe) || pe.Highlight == nil {
		return bytes.Count(p.Data(), []byte("\n")) + 1
	}
	defer func() { _ = recover() }() // a highlight outside the data: keep line 0
	return p.Shape(p.Range(pe.Highlight)).Start.Line
}

// describeSyntax turns a parser error into a message in the words of the
// config file's format.
func describeSyntax(p *unstable.Parser, err error) string {
	msg := err.Error()
	var pe *unstable.ParserError
	if errors.As(err, &pe) {
		msg = pe.Message
	}
	line := errorLine(p, err)
	if line < 1 {
		return msg
	}
	lines := strings.Split(string(p.Data()), "\n")
	if line <= len(lines) {
		text := strings.TrimSpace(lines[line-1])
		if text != "" && text[0] != '#' && text[0] != '[' && !strings.Contains(text, "=") {
			return "expected key = value"
		}
		if strings.Contains(msg, "at start of value") {
			return "the value is not TOML; quote strings (key = \"...\")"
		}
		if l := strings.ToLower(msg); strings.Contains(l, "string") && !strings.Contains(l, "unterminated") &&
			(strings.Contains(l, "eof") || strings.Contains(l, "new line") || strings.Contains(l, "newline")) {
			return "unterminated string (" + msg + ")"
		}
	}
	return msg
}

// bareLine is `key = word # comment` where word may be a bare word.
var bareLine = regexp.MustCompile(`^(\s*[A-Za-z0-9_-]+\s*=\s*)([^\s"'\[{#][^\s#]*)(\s*(?:#.*)?)$`)

// quoteBareWords rewrites the lines whose value is a bare word that is
// not a TOML value into a quoted string, keeping every line in place. It
// reports false when there is nothing to rewrite or the file has
// multi-line strings, whose content it could not tell from keys.
func quoteBareWords(data []byte) ([]byte, bool) {
	if bytes.Contains(data, []byte(`"""`)) || bytes.Contains(data, []byte(`'''`)) {
		return nil, false
	}
	lines := strings.Split(string(data), "\n")
	changed := false
	for i, l := range lines {
		m := bareLine.FindStringSubmatch(strings.TrimSuffix(l, "\r"))
		if m == nil || isTOMLValue(m[2]) {
			continue
		}
		lines[i] = m[1] + tomlQuote(m[2]) + m[3]
		changed = true
	}
	if !changed {
		return nil, false
	}
	return []byte(strings.Join(lines, "\n")), true
}

// isTOMLValue reports whether word alone is a TOML value.
func isTOMLValue(word string) bool {
	var p unstable.Parser
	p.Reset([]byte("k = " + word + "\n"))
	for p.NextExpression() {
	}
	return p.Error() == nil
}

// tomlQuote returns s as a TOML basic string.
func tomlQuote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\u%04X`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
