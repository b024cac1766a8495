package jsondoc

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// Helpers that the tests of several files use: comparing JSON.

// sameJSON reports whether two JSON texts are the same value as
// encoding/json reads them: objects compared as maps (so member order and
// duplicate keys do not matter, the last of duplicates counting), numbers
// by their text.
func sameJSON(t testing.TB, a, b []byte) bool {
	t.Helper()
	va, vb := decodeJSON(t, a), decodeJSON(t, b)
	return reflect.DeepEqual(va, vb)
}

// decodeJSON decodes one JSON text, numbers as json.Number, failing the
// test unless b is exactly one JSON value.
func decodeJSON(t testing.TB, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	if dec.More() {
		t.Fatalf("trailing data after %s", b)
	}
	return v
}
