package jsondoc

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// valid reports whether b is one JSON text, by the scanner.
func valid(b []byte) (bool, error) {
	end, err := SkipValue(b, SkipSpace(b, 0), 0)
	if err != nil {
		return false, err
	}
	return SkipSpace(b, end) == len(b), nil
}

// FuzzSkipValue checks the scanner against encoding/json on arbitrary
// bytes: the same verdict on validity, errors that wrap ErrInvalidJSON,
// and no panic.
func FuzzSkipValue(f *testing.F) {
	for _, s := range []string{
		``, ` `, `null`, `nul`, `true`, `false`, `0`, `-0`, `01`, `1.`, `1.5e+3`, `-`, `1e`, `"a"`, `"\u00e9\ud83d\ude00"`,
		`"\x"`, `"\u12"`, "\"\x01\"", "\"\xff\"", `[]`, `[1,]`, `[1 2]`, `{}`, `{"a":1,"a":2}`, `{"a" 1}`, `{1:2}`,
		`{"a":[{"b":null}]}`, ` [ 1 , { } ] `, `[1]x`, strings.Repeat("[", 10001) + strings.Repeat("]", 10001),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ok, err := valid(b)
		if err != nil && !errors.Is(err, ErrInvalidJSON) {
			t.Fatalf("valid(%q): an error that is not ErrInvalidJSON: %v", b, err)
		}
		if want := json.Valid(b); ok != want {
			t.Fatalf("valid(%q) = %v (%v), json.Valid = %v", b, ok, err, want)
		}
	})
}

func TestNestingDepth(t *testing.T) {
	deep := func(n int) []byte {
		return []byte(strings.Repeat(`{"a":[`, n/2) + strings.Repeat(`]}`, n/2))
	}
	if ok, err := valid(deep(MaxDepth)); !ok {
		t.Errorf("depth %d: %v", MaxDepth, err)
	}
	if ok, err := valid(deep(MaxDepth + 2)); ok || !errors.Is(err, ErrInvalidJSON) {
		t.Errorf("depth %d: %v, want ErrInvalidJSON", MaxDepth+2, err)
	}
}

func TestAppendUnquoted(t *testing.T) {
	for body, want := range map[string]string{
		`plain`:              "plain",
		`a\"b\\c\/d`:         `a"b\c/d`,
		`\b\f\n\r\t`:         "\b\f\n\r\t",
		`\u00e9\ud83d\ude00`: "é😀",
		`\ud800x`:            "\ufffdx",
		`\udc00\ud800`:       "\ufffd\ufffd",
		"\xff":               "\ufffd",
		`\u0000`:             "\x00",
	} {
		if got := string(AppendUnquoted(nil, []byte(body), false)); got != want {
			t.Errorf("AppendUnquoted(%q) = %q, want %q", body, got, want)
		}
		var viaJSON string
		if err := json.Unmarshal([]byte(`"`+body+`"`), &viaJSON); err != nil || viaJSON != want {
			t.Errorf("encoding/json reads %q as %q (%v), the test wants %q", body, viaJSON, err, want)
		}
	}
	if got := string(AppendUnquoted(nil, []byte(`a\u0000b`), true)); got != "a\x00\xffb" {
		t.Errorf("canonical AppendUnquoted of NUL = %q", got)
	}
}
