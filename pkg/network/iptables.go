package network

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
)

// This file is the only place that runs the iptables tools. Rules are
// handled as argument lists exactly as iptables-save prints them after
// "-A <chain>", so saved rules can be deleted verbatim.

// iptables runs `iptables -w` (wait for the xtables lock) with args.
func iptables(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "iptables", append([]string{"-w"}, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &iptablesError{args: args, err: err, stderr: strings.TrimSpace(stderr.String())}
	}
	return stdout.String(), nil
}

type iptablesError struct {
	args   []string
	err    error
	stderr string
}

func (e *iptablesError) Error() string {
	return fmt.Sprintf("iptables %s: %v: %s", strings.Join(e.args, " "), e.err, e.stderr)
}

func (e *iptablesError) Unwrap() error { return e.err }

// exitCode returns the process exit code of an iptables error, or -1.
func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// iptablesSave returns the rules of one table as iptables-save prints them.
func iptablesSave(ctx context.Context, table string) (string, error) {
	cmd := exec.CommandContext(ctx, "iptables-save", "-t", table)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("iptables-save -t %s: %w: %s", table, err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// ruleExists reports whether chain in table holds rule.
func ruleExists(ctx context.Context, table, chain string, rule []string) (bool, error) {
	_, err := iptables(ctx, append([]string{"-t", table, "-C", chain}, rule...)...)
	if err == nil {
		return true, nil
	}
	// -C exits 1 when the rule is absent (and also when the chain is
	// missing, which for our purposes is the same).
	if exitCode(err) == 1 {
		return false, nil
	}
	return false, err
}

// ensureRule adds rule to chain unless it is already there; insert puts it
// first in the chain instead of last.
func ensureRule(ctx context.Context, table, chain string, rule []string, insert bool) error {
	ok, err := ruleExists(ctx, table, chain, rule)
	if err != nil || ok {
		return err
	}
	op := "-A"
	if insert {
		op = "-I"
	}
	_, err = iptables(ctx, append([]string{"-t", table, op, chain}, rule...)...)
	return err
}

// deleteRule removes every copy of rule from chain; an absent rule is not an error.
func deleteRule(ctx context.Context, table, chain string, rule []string) error {
	for i := 0; i < 100; i++ {
		ok, err := ruleExists(ctx, table, chain, rule)
		if err != nil || !ok {
			return err
		}
		if _, err := iptables(ctx, append([]string{"-t", table, "-D", chain}, rule...)...); err != nil {
			return err
		}
	}
	return fmt.Errorf("delete rule from %s/%s: still present after 100 deletions", table, chain)
}

// deleteChain flushes and deletes a chain; a missing chain is not an error.
func deleteChain(ctx context.Context, table, chain string) error {
	if _, err := iptables(ctx, "-t", table, "-F", chain); err != nil {
		if exitCode(err) == 1 {
			return nil
		}
		return err
	}
	_, err := iptables(ctx, "-t", table, "-X", chain)
	return err
}

// savedRule is one "-A chain args..." line of iptables-save output.
type savedRule struct {
	chain string
	args  []string
	line  string
}

// target returns the -j target of the rule, or "".
func (r savedRule) target() string {
	for i := 0; i+1 < len(r.args); i++ {
		if r.args[i] == "-j" {
			return r.args[i+1]
		}
	}
	return ""
}

// parseSave returns the rules of iptables-save output.
func parseSave(out string) []savedRule {
	var rules []savedRule
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "-A ") {
			continue
		}
		f := SplitSaveLine(line)
		if len(f) < 2 {
			continue
		}
		rules = append(rules, savedRule{chain: f[1], args: f[2:], line: line})
	}
	return rules
}

// SplitSaveLine splits an iptables-save line into words the way a shell
// would: double quotes group, and a backslash escapes the next character
// inside them (iptables-save writes comments as "a \"b\""). The test
// runner's sweep of interrupted runs uses it too.
func SplitSaveLine(line string) []string {
	var words []string
	var cur strings.Builder
	inWord, inQuote := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case inQuote && c == '\\' && i+1 < len(line):
			i++
			cur.WriteByte(line[i])
		case c == '"':
			inQuote = !inQuote
			inWord = true
		case !inQuote && (c == ' ' || c == '\t'):
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words
}
