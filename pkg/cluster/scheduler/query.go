package scheduler

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// The cluster query language, as ECS documents it for memberOf placement
// constraints and ListContainerInstances filters:
//
//	expr    := and { ("or" | "||") and }
//	and     := unary { ("and" | "&&") unary }
//	unary   := ("not" | "!") unary | "(" expr ")" | subject op value | subject ("exists" | "!exists")
//	value   := word | 'quoted' | "[" value { "," value } "]"
//
// Subjects: attribute:<name>, ec2InstanceId, agentConnected, agentVersion,
// registeredAt, runningTasksCount, task:group. Operators: == != > >= < <=
// in !in not_in =~ !~.

// Expr is a parsed query-language expression; Eval reports whether an
// instance matches it.
type Expr interface {
	Eval(in *Instance) bool
}

// SyntaxError says where an expression is malformed.
type SyntaxError struct {
	Expr string
	Pos  int // byte offset of the offending token
	Msg  string
}

// Error names the position and what was expected.
func (e *SyntaxError) Error() string {
	return fmt.Sprintf("Invalid expression %q at position %d: %s", e.Expr, e.Pos+1, e.Msg)
}

type tokKind int

const (
	tokEOF tokKind = iota
	tokWord
	tokQuoted
	tokLParen
	tokRParen
	tokLBracket
	tokRBracket
	tokComma
	tokOp   // == != > >= < <= =~ !~
	tokNot  // ! (unary)
	tokAnd  // &&
	tokOr   // ||
	tokBang // !exists, !in: the "!" glued to a word
)

type token struct {
	kind tokKind
	text string
	pos  int
}

// lex splits an expression into tokens.
func lex(src string) ([]token, error) {
	var out []token
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(':
			out = append(out, token{tokLParen, "(", i})
			i++
		case c == ')':
			out = append(out, token{tokRParen, ")", i})
			i++
		case c == '[':
			out = append(out, token{tokLBracket, "[", i})
			i++
		case c == ']':
			out = append(out, token{tokRBracket, "]", i})
			i++
		case c == ',':
			out = append(out, token{tokComma, ",", i})
			i++
		case c == '\'':
			end := strings.IndexByte(src[i+1:], '\'')
			if end < 0 {
				return nil, &SyntaxError{src, i, "unterminated quoted value"}
			}
			out = append(out, token{tokQuoted, src[i+1 : i+1+end], i})
			i += end + 2
		case strings.HasPrefix(src[i:], "&&"):
			out = append(out, token{tokAnd, "&&", i})
			i += 2
		case strings.HasPrefix(src[i:], "||"):
			out = append(out, token{tokOr, "||", i})
			i += 2
		case strings.HasPrefix(src[i:], "=="), strings.HasPrefix(src[i:], "!="),
			strings.HasPrefix(src[i:], ">="), strings.HasPrefix(src[i:], "<="),
			strings.HasPrefix(src[i:], "=~"), strings.HasPrefix(src[i:], "!~"):
			out = append(out, token{tokOp, src[i : i+2], i})
			i += 2
		case c == '>' || c == '<':
			out = append(out, token{tokOp, src[i : i+1], i})
			i++
		case c == '!':
			if strings.HasPrefix(src[i:], "!exists") || strings.HasPrefix(src[i:], "!in") && (i+3 == len(src) || !isWordByte(src[i+3])) {
				j := i + 1
				for j < len(src) && isWordByte(src[j]) {
					j++
				}
				out = append(out, token{tokBang, src[i:j], i})
				i = j
				continue
			}
			out = append(out, token{tokNot, "!", i})
			i++
		case isWordByte(c):
			j := i
			for j < len(src) && isWordByte(src[j]) {
				j++
			}
			out = append(out, token{tokWord, src[i:j], i})
			i = j
		default:
			return nil, &SyntaxError{src, i, fmt.Sprintf("unexpected character %q", c)}
		}
	}
	return append(out, token{tokEOF, "", len(src)}), nil
}

// isWordByte reports whether c may appear in a bare word: names, values,
// dates with offsets and simple regular expressions.
func isWordByte(c byte) bool {
	switch c {
	case ' ', '\t', '\n', '\r', '(', ')', '[', ']', ',', '\'', '=', '<', '>', '!', '~', '&', '|':
		return false
	}
	return c > ' ' && c < 0x7f
}

type parser struct {
	src  string
	toks []token
	i    int
}

// Parse parses a query-language expression.
func Parse(src string) (Expr, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{src: src, toks: toks}
	if p.peek().kind == tokEOF {
		return nil, &SyntaxError{src, 0, "empty expression"}
	}
	e, err := p.parseOr()
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tokEOF {
		return nil, p.errAt(t, "expected and, or or the end")
	}
	return e, nil
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) next() token { t := p.toks[p.i]; p.i++; return t }

func (p *parser) errAt(t token, want string) error {
	near := t.text
	if t.kind == tokEOF {
		near = "end of expression"
	}
	return &SyntaxError{p.src, t.pos, fmt.Sprintf("%s, found %q", want, near)}
}

func isWordKw(t token, kw string) bool { return t.kind == tokWord && strings.EqualFold(t.text, kw) }

func (p *parser) parseOr() (Expr, error) {
	return p.parseChain(tokOr, "or", p.parseAnd, func(l, r Expr) Expr { return orExpr{l, r} })
}

func (p *parser) parseAnd() (Expr, error) {
	return p.parseChain(tokAnd, "and", p.parseUnary, func(l, r Expr) Expr { return andExpr{l, r} })
}

// parseChain parses one binary level of the grammar, operand { op operand }
// where op is the symbol kind or the keyword word, joining the operands
// from the left.
func (p *parser) parseChain(op tokKind, word string, operand func() (Expr, error), join func(l, r Expr) Expr) (Expr, error) {
	l, err := operand()
	if err != nil {
		return nil, err
	}
	for t := p.peek(); t.kind == op || isWordKw(t, word); t = p.peek() {
		p.next()
		r, err := operand()
		if err != nil {
			return nil, err
		}
		l = join(l, r)
	}
	return l, nil
}

func (p *parser) parseUnary() (Expr, error) {
	t := p.peek()
	switch {
	case t.kind == tokNot || isWordKw(t, "not"):
		p.next()
		e, err := p.parseUnary()
		if err != nil {
			return nil, err
		}
		return notExpr{e}, nil
	case t.kind == tokLParen:
		p.next()
		e, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if c := p.next(); c.kind != tokRParen {
			return nil, p.errAt(c, "expected )")
		}
		return e, nil
	}
	return p.parseComparison()
}

// isSubject reports whether s is one of the fixed subjects.
func isSubject(s string) bool {
	switch s {
	case "ec2InstanceId", "agentConnected", "agentVersion", "registeredAt", "runningTasksCount", "task:group":
		return true
	}
	return false
}

func (p *parser) parseComparison() (Expr, error) {
	st := p.next()
	if st.kind != tokWord {
		return nil, p.errAt(st, "expected a subject (attribute:<name>, ec2InstanceId, agentConnected, agentVersion, registeredAt, runningTasksCount or task:group)")
	}
	subj := st.text
	if name, ok := strings.CutPrefix(subj, "attribute:"); ok {
		if name == "" {
			return nil, &SyntaxError{p.src, st.pos, "attribute: needs a name"}
		}
	} else if !isSubject(subj) {
		return nil, &SyntaxError{p.src, st.pos, fmt.Sprintf("unknown subject %q", subj)}
	}
	ot := p.next()
	var op string
	switch {
	case ot.kind == tokOp:
		op = ot.text
	case ot.kind == tokBang && (ot.text == "!exists" || ot.text == "!in"):
		op = ot.text
	case isWordKw(ot, "exists"), isWordKw(ot, "in"), isWordKw(ot, "not_in"):
		op = strings.ToLower(ot.text)
	default:
		return nil, p.errAt(ot, "expected an operator (==, !=, >, >=, <, <=, exists, !exists, in, !in, not_in, =~, !~)")
	}
	if op == "not_in" {
		op = "!in"
	}
	c := &comparison{subject: subj, op: op, attr: strings.TrimPrefix(subj, "attribute:")}
	if op == "exists" || op == "!exists" {
		return c, nil
	}
	if op == "in" || op == "!in" {
		lb := p.next()
		if lb.kind != tokLBracket {
			return nil, p.errAt(lb, "expected [ to start a list")
		}
		for {
			v := p.next()
			if v.kind != tokWord && v.kind != tokQuoted {
				return nil, p.errAt(v, "expected a list value")
			}
			c.values = append(c.values, v.text)
			sep := p.next()
			if sep.kind == tokRBracket {
				break
			}
			if sep.kind != tokComma {
				return nil, p.errAt(sep, "expected , or ]")
			}
		}
		c.parseNumbers()
		return c, nil
	}
	v := p.next()
	if v.kind != tokWord && v.kind != tokQuoted {
		return nil, p.errAt(v, "expected a value")
	}
	c.values = []string{v.text}
	c.parseNumbers()
	if op == "=~" || op == "!~" {
		re, err := regexp.Compile(v.text)
		if err != nil {
			return nil, &SyntaxError{p.src, v.pos, fmt.Sprintf("invalid regular expression: %v", err)}
		}
		c.re = re
	}
	switch subj {
	case "registeredAt":
		if _, err := parseDate(v.text); err != nil {
			return nil, &SyntaxError{p.src, v.pos, fmt.Sprintf("%q is not a date (2018-06-18 or 2018-06-18T22:28:28Z)", v.text)}
		}
	case "runningTasksCount":
		if op != "=~" && op != "!~" {
			if _, err := strconv.ParseInt(v.text, 10, 64); err != nil {
				return nil, &SyntaxError{p.src, v.pos, fmt.Sprintf("%q is not a number", v.text)}
			}
		}
	case "agentConnected":
		if op != "==" && op != "!=" || v.text != "true" && v.text != "false" {
			return nil, &SyntaxError{p.src, v.pos, "agentConnected compares with == or != to true or false"}
		}
	}
	return c, nil
}

// parseDate reads the date forms ECS accepts: a day, or a time with Z or an
// offset (or none, meaning UTC).
func parseDate(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02", time.RFC3339, "2006-01-02T15:04:05", "2006-01-02T15:04:05Z0700"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("not a date: %q", s)
}

type andExpr struct{ l, r Expr }
type orExpr struct{ l, r Expr }
type notExpr struct{ e Expr }

// ReadsTasks reports whether e looks at an instance's tasks
// (runningTasksCount, task:group) rather than only at what its record
// says; an expression of a kind it does not know is assumed to.
func ReadsTasks(e Expr) bool {
	switch e := e.(type) {
	case andExpr:
		return ReadsTasks(e.l) || ReadsTasks(e.r)
	case orExpr:
		return ReadsTasks(e.l) || ReadsTasks(e.r)
	case notExpr:
		return ReadsTasks(e.e)
	case *comparison:
		return e.subject == "runningTasksCount" || e.subject == "task:group"
	}
	return true
}

func (e andExpr) Eval(in *Instance) bool { return e.l.Eval(in) && e.r.Eval(in) }
func (e orExpr) Eval(in *Instance) bool  { return e.l.Eval(in) || e.r.Eval(in) }
func (e notExpr) Eval(in *Instance) bool { return !e.e.Eval(in) }

type comparison struct {
	subject string
	attr    string // the name after attribute:
	op      string
	values  []string
	nums    []number // values parsed as numbers
	re      *regexp.Regexp
}

type number struct {
	v  float64
	ok bool
}

// parseNumbers records which values are numbers.
func (c *comparison) parseNumbers() {
	c.nums = make([]number, len(c.values))
	for i, w := range c.values {
		if f, err := strconv.ParseFloat(w, 64); err == nil {
			c.nums[i] = number{f, true}
		}
	}
}

// eachValue calls fn with each of the subject's values on an instance
// (task:group has one per group running there; a missing attribute has
// none) until fn returns true, and reports whether one did. It allocates
// nothing for the common subjects, as placement evaluates it per instance.
func (c *comparison) eachValue(in *Instance, fn func(string) bool) bool {
	switch c.subject {
	case "ec2InstanceId":
		return fn(in.Host())
	case "agentConnected":
		return fn(strconv.FormatBool(in.AgentConnected))
	case "agentVersion":
		return in.AgentVersion != "" && fn(in.AgentVersion)
	case "registeredAt":
		return fn(in.RegisteredAt.UTC().Format(time.RFC3339))
	case "runningTasksCount":
		return fn(strconv.Itoa(in.RunningTasks))
	case "task:group":
		for g, n := range in.Groups {
			if n > 0 && fn(g) {
				return true
			}
		}
		return false
	}
	v, ok := in.Attributes[c.attr]
	return ok && fn(v)
}

// Eval reports whether any of the subject's values satisfies the operator;
// the negated operators are true when none does.
func (c *comparison) Eval(in *Instance) bool {
	switch c.op {
	case "exists":
		return c.eachValue(in, func(string) bool { return true })
	case "!exists":
		return !c.eachValue(in, func(string) bool { return true })
	case "!=":
		return !c.eachValue(in, func(v string) bool { return c.holds(v, "==") })
	case "!in":
		return !c.eachValue(in, func(v string) bool { return c.holds(v, "in") })
	case "!~":
		return !c.eachValue(in, func(v string) bool { return c.holds(v, "=~") })
	}
	return c.eachValue(in, func(v string) bool { return c.holds(v, c.op) })
}

func (c *comparison) holds(v, op string) bool {
	switch op {
	case "=~":
		return c.re.MatchString(v)
	case "in":
		for i := range c.values {
			if c.compare(v, i) == 0 {
				return true
			}
		}
		return false
	}
	r := c.compare(v, 0)
	switch op {
	case "==":
		return r == 0
	case ">":
		return r > 0
	case ">=":
		return r >= 0
	case "<":
		return r < 0
	case "<=":
		return r <= 0
	}
	return false
}

// compare orders an instance's value against the expression's i-th value
// as the subject's type: numbers, dates, dotted versions, else strings.
// Numeric expression values were parsed once, so that a string attribute
// costs no failed number parse.
func (c *comparison) compare(v string, i int) int {
	w := c.values[i]
	switch c.subject {
	case "runningTasksCount":
		a, _ := strconv.ParseInt(v, 10, 64)
		b, _ := strconv.ParseInt(w, 10, 64)
		return cmpInt(a, b)
	case "registeredAt":
		a, _ := time.Parse(time.RFC3339, v)
		b, err := parseDate(w)
		if err != nil {
			return strings.Compare(v, w)
		}
		return a.Compare(b)
	case "agentVersion":
		return compareVersions(v, w)
	}
	if c.nums[i].ok && v != "" && (v[0] >= '0' && v[0] <= '9' || v[0] == '-' || v[0] == '.') {
		if a, err := strconv.ParseFloat(v, 64); err == nil {
			b := c.nums[i].v
			switch {
			case a < b:
				return -1
			case a > b:
				return 1
			}
			return 0
		}
	}
	return strings.Compare(v, w)
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// compareVersions compares dotted versions numerically ("1.10.0" > "1.9.2"),
// ignoring a leading "v".
func compareVersions(a, b string) int {
	as := strings.Split(strings.TrimPrefix(a, "v"), ".")
	bs := strings.Split(strings.TrimPrefix(b, "v"), ".")
	for i := 0; i < max(len(as), len(bs)); i++ {
		var x, y int64
		var errX, errY error
		if i < len(as) {
			x, errX = strconv.ParseInt(as[i], 10, 64)
		}
		if i < len(bs) {
			y, errY = strconv.ParseInt(bs[i], 10, 64)
		}
		if errX != nil || errY != nil {
			return strings.Compare(a, b)
		}
		if r := cmpInt(x, y); r != 0 {
			return r
		}
	}
	return 0
}
