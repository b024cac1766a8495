package index

import "testing"

// Helpers that the tests of several files use. A helper that one file's
// tests use stays in that file; so does the reference implementation in
// reference_test.go, which the fuzz test compares against.

// mustParse parses a JSON value, failing the test on an error.
func mustParse(t testing.TB, text string) Value {
	t.Helper()
	v, err := ParseValue([]byte(text))
	if err != nil {
		t.Fatalf("ParseValue(%s): %v", text, err)
	}
	return v
}

// cmpInt compares two ints as cmp.Compare does, as -1, 0 or 1.
func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
