package electric

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/tidings/tidings/txlog"
)

// TestParseOffsetAccepts checks the offsets this server sends, which are
// the only ones it reads, and that each is written back as it came.
func TestParseOffsetAccepts(t *testing.T) {
	for _, c := range []struct {
		in   string
		want offset
	}{
		{"-1", offset{kind: offsetInitial}},
		{"now", offset{kind: offsetNow}},
		{"0_0", offset{kind: offsetAt, txn: 0}},
		{"1_0", offset{kind: offsetAt, txn: 1}},
		{"1796410559680691_0", offset{kind: offsetAt, txn: 1796410559680691}},
		{"18446744073709551615_0", offset{kind: offsetAt, txn: 1<<64 - 1}},
	} {
		got, err := parseOffset(c.in)
		if err != nil || got != c.want {
			t.Errorf("parseOffset(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
			continue
		}
		if s := got.String(); s != c.in {
			t.Errorf("parseOffset(%q).String() = %q", c.in, s)
		}
	}
}

// TestParseOffsetForeign checks that Electric's offsets, which this server
// never sends, are told apart from malformed ones: they get a 409 (the
// client re-syncs), not a 400 (the client stops).
func TestParseOffsetForeign(t *testing.T) {
	for _, in := range []string{"0_inf", "1_1", "1796410559680691_3", "5_18446744073709551615", "0_1"} {
		if _, err := parseOffset(in); err != errForeignOffset {
			t.Errorf("parseOffset(%q) = %v, want errForeignOffset", in, err)
		}
	}
}

// TestParseOffsetRefuses checks that other spellings of an offset, and
// anything else, are a 400 on offset: an offset has one spelling.
func TestParseOffsetRefuses(t *testing.T) {
	for _, c := range []struct{ in, why string }{
		{"", "missing"},
		{"-2", `"-2" is not an offset`},
		{"NOW", "not an offset"},
		{"Now", "not an offset"},
		{"-01", "not an offset"},
		{"1", "not an offset"},
		{"1_", "not an offset"},
		{"_0", "not an offset"},
		{"_", "not an offset"},
		{"01_0", "not an offset"},
		{"+1_0", "not an offset"},
		{"-1_0", "not an offset"},
		{" 1_0", "not an offset"},
		{"1_0 ", "not an offset"},
		{"1_00", "not an offset"},
		{"1_01", "not an offset"},
		{"1_-1", "not an offset"},
		{"1_+1", "not an offset"},
		{"1_0_0", "not an offset"},
		{"1_INF", "not an offset"},
		{"1_inf0", "not an offset"},
		{"0x1_0", "not an offset"},
		{"1e3_0", "not an offset"},
		{"1_000000000000000000000", "not an offset"},
		{"18446744073709551616_0", "not an offset"},
		{"１_0", "not an offset"},
		{"0/1234567", "not an offset"},
		{strings.Repeat("\xff", 100), "not an offset"},
		{strings.Repeat("1", maxOffsetLen) + "_0", "not an offset"},
		{strings.Repeat("1", maxOffsetLen) + "_1", "not an offset"},
	} {
		_, err := parseOffset(c.in)
		var pe *paramError
		if !errors.As(err, &pe) || pe.param != "offset" || !strings.Contains(pe.why, c.why) {
			t.Errorf("parseOffset(%q) = %v, want an offset error saying %q", c.in, err, c.why)
			continue
		}
		if len(pe.why) > 400 {
			t.Errorf("parseOffset(%.20q): a reason of %d bytes", c.in, len(pe.why))
		}
	}
}

// TestOffsetString checks that String writes what parseOffset reads back,
// and that the zero offset does not pass for one.
func TestOffsetString(t *testing.T) {
	for _, o := range []offset{
		{kind: offsetInitial}, {kind: offsetNow}, {kind: offsetAt}, {kind: offsetAt, txn: 42}, {kind: offsetAt, txn: 1<<64 - 1},
	} {
		back, err := parseOffset(o.String())
		if err != nil || back != o {
			t.Errorf("%+v: %q reads back as %+v, %v", o, o.String(), back, err)
		}
	}
	if _, err := parseOffset(offset{}.String()); err == nil {
		t.Errorf("the zero offset's %q parses", offset{}.String())
	}
}

// TestHandleRoundTrip checks that a handle reads back as the hash and txn
// it was made of.
func TestHandleRoundTrip(t *testing.T) {
	log := txlog.ID{1, 2, 3}
	for _, s := range []txlog.Txn{0, 1, 1796410559680691, 1<<64 - 1} {
		h := makeHandle(log, `spells|element="fire"`, s)
		hash, got, err := parseHandle(h)
		if err != nil || got != s || hash != shapeHash(log, `spells|element="fire"`) {
			t.Errorf("makeHandle(…, %d) = %q reads back as %q, %d, %v", s, h, hash, got, err)
		}
		if want := hash + "-" + strconv.FormatUint(uint64(s), 10); h != want {
			t.Errorf("makeHandle = %q, want %q", h, want)
		}
	}
}

// TestShapeHash checks what a handle's hash is for: the same log and
// definition give the same hash (a valid handle stays valid), and another
// log or another definition gives another (the client's handle becomes a 409).
func TestShapeHash(t *testing.T) {
	a, b := txlog.ID{1}, txlog.ID{2}
	h := shapeHash(a, "spells")
	if len(h) != 16 || strings.Trim(h, "0123456789abcdef") != "" {
		t.Fatalf("shapeHash = %q, want 16 lowercase hex digits", h)
	}
	if shapeHash(a, "spells") != h {
		t.Error("shapeHash is not a function of its inputs")
	}
	seen := map[string]string{h: "a spells"}
	for _, c := range []struct {
		log txlog.ID
		def string
	}{
		{b, "spells"}, {a, "spells "}, {a, ""}, {a, "spells1"}, {a, "spell"}, {txlog.ID{}, "spells"}, {b, ""},
	} {
		hc := shapeHash(c.log, c.def)
		name := string(rune('a'+c.log[0])) + " " + c.def
		if prev, ok := seen[hc]; ok {
			t.Errorf("shapeHash(%s) = shapeHash(%s) = %s", name, prev, hc)
		}
		seen[hc] = name
	}
}

// TestParseHandleRefuses checks that handles this server cannot have made
// are errMalformedHandle (a 409, see parseHandle), one spelling each.
func TestParseHandleRefuses(t *testing.T) {
	for _, h := range []string{
		"", "abc", "0123456789abcdef", "0123456789abcdef-", "-1",
		"0123456789ABCDEF-1", "0123456789abcde-1", "0123456789abcdef0-1", "g123456789abcdef-1",
		"0123456789abcdef-01", "0123456789abcdef-+1", "0123456789abcdef--1", "0123456789abcdef-1-2",
		"0123456789abcdef- 1", "0123456789abcdef-1 ", "0123456789abcdef-18446744073709551616",
		"0123456789abcdef-1_0", "0123456789abcdef-" + strings.Repeat("0", maxOffsetLen),
	} {
		if hash, s, err := parseHandle(h); !errors.Is(err, errMalformedHandle) {
			t.Errorf("parseHandle(%q) = %q, %d, %v; want errMalformedHandle", h, hash, s, err)
		}
	}
}
