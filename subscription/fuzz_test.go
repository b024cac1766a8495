package subscription

import (
	"errors"
	"net/url"
	"strings"
	"testing"
)

// FuzzParseFields reads the fields parameter as it comes from outside, in
// a query string (raw, and URL-unescaped as a server would see it). It
// never panics; it either fails with ErrInvalidOptions and returns 0, or
// returns a non-zero set of known fields that agrees with a model of the
// grammar (comma-separated names, spaces around them ignored, blank means
// the default) and survives String and ParseFields again.
func FuzzParseFields(f *testing.F) {
	for _, s := range []string{
		"", " ", "action", "document", "prev,diff", "action,document,prev,diff,index",
		" index , action ", "diff,diff", "action,", ",", "Action", "data", "prev%2Cdiff",
		"prev+diff", "action%00", "\t\n action \r", "\u00a0action", "action\u0085", "%zz", "actio\xffn",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkParseFields(t, s)
		if u, err := url.QueryUnescape(s); err == nil {
			checkParseFields(t, u)
		}
	})
}

func checkParseFields(t *testing.T, s string) {
	got, err := ParseFields(s)
	want, ok := parseFieldsModel(s)
	if !ok {
		if !errors.Is(err, ErrInvalidOptions) || got != 0 {
			t.Fatalf("ParseFields(%q) = %v, %v; want 0, ErrInvalidOptions", s, got, err)
		}
		return
	}
	if err != nil || got != want {
		t.Fatalf("ParseFields(%q) = %v, %v; want %v", s, got, err, want)
	}
	if got == 0 || got&^allFields != 0 {
		t.Fatalf("ParseFields(%q) = %#x", s, uint8(got))
	}
	again, err := ParseFields(got.String())
	if err != nil || again != got {
		t.Fatalf("ParseFields(%q) = %v, %v after String of %v", got.String(), again, err, got)
	}
	if _, err := (Options{Fields: got}).Normalize(); err != nil {
		t.Fatalf("Normalize refuses fields %v parsed from %q: %v", got, s, err)
	}
}

func parseFieldsModel(s string) (Fields, bool) {
	if strings.TrimSpace(s) == "" {
		return DefaultFields, true
	}
	names := map[string]Fields{"action": FieldAction, "document": FieldDocument, "prev": FieldPrev, "diff": FieldDiff, "index": FieldIndex}
	var fs Fields
	for _, part := range strings.Split(s, ",") {
		f, ok := names[strings.TrimSpace(part)]
		if !ok {
			return 0, false
		}
		fs |= f
	}
	return fs, true
}
