package resp

// match reports whether s matches the glob pattern p with Redis's rules
// (KEYS, SCAN MATCH): * any run, ? any byte, [abc] [^abc] [a-z] classes,
// and \x for a literal x. It runs in O(len(p)·len(s)) at worst (no
// exponential backtracking: a later * supersedes an earlier one).
func match(p, s string) bool {
	var starP, starS = -1, 0
	i, j := 0, 0
	for j < len(s) {
		if i < len(p) {
			switch p[i] {
			case '*':
				for i < len(p) && p[i] == '*' {
					i++
				}
				if i == len(p) {
					return true
				}
				starP, starS = i, j
				continue
			case '?':
				i++
				j++
				continue
			case '[':
				if n, ok := matchClass(p[i:], s[j]); n > 0 {
					if ok {
						i += n
						j++
						continue
					}
				} else if s[j] == '[' { // an unterminated class is a literal '['
					i++
					j++
					continue
				}
			case '\\':
				if i+1 < len(p) {
					if p[i+1] == s[j] {
						i += 2
						j++
						continue
					}
				} else if s[j] == '\\' {
					i++
					j++
					continue
				}
			default:
				if p[i] == s[j] {
					i++
					j++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starS++
		i, j = starP, starS
	}
	for i < len(p) && p[i] == '*' {
		i++
	}
	return i == len(p)
}

// matchClass matches c against the class that starts p (p[0] == '['). It
// returns the class's length in p (0 when it is not terminated) and
// whether c is in it.
func matchClass(p string, c byte) (int, bool) {
	i := 1
	neg := false
	if i < len(p) && p[i] == '^' {
		neg = true
		i++
	}
	in := false
	for i < len(p) {
		if p[i] == ']' {
			return i + 1, in != neg
		}
		lo := p[i]
		if lo == '\\' && i+1 < len(p) {
			i++
			lo = p[i]
		}
		if i+2 < len(p) && p[i+1] == '-' && p[i+2] != ']' {
			hi := p[i+2]
			if hi == '\\' && i+3 < len(p) {
				i++
				hi = p[i+2]
			}
			if lo > hi {
				lo, hi = hi, lo
			}
			if c >= lo && c <= hi {
				in = true
			}
			i += 3
			continue
		}
		if c == lo {
			in = true
		}
		i++
	}
	return 0, false
}
