package index

// A reference model of the order of JSON values, built on encoding/json
// and math/big: the fuzz test checks the package against it.

import (
	"bytes"
	"encoding/json"
	"math/big"
	"slices"
	"strings"
)

// refCompare orders decoded JSON values by the documented total order,
// numbers compared exactly with math/big. ok is false where a number's
// exponent is too large to compare this way in reasonable time.
func refCompare(a, b any) (c int, ok bool) {
	ra, rb := refRank(a), refRank(b)
	if ra != rb {
		return cmpInt(ra, rb), true
	}
	switch x := a.(type) {
	case json.Number:
		p, okp := refRat(x)
		q, okq := refRat(b.(json.Number))
		if !okp || !okq {
			return 0, false
		}
		return p.Cmp(q), true
	case string:
		return strings.Compare(x, b.(string)), true
	case []any:
		y := b.([]any)
		for i := 0; i < len(x) && i < len(y); i++ {
			if c, ok := refCompare(x[i], y[i]); c != 0 || !ok {
				return c, ok
			}
		}
		return cmpInt(len(x), len(y)), true
	case map[string]any:
		y := b.(map[string]any)
		kx, ky := sortedKeys(x), sortedKeys(y)
		for i := 0; i < len(kx) && i < len(ky); i++ {
			if c := strings.Compare(kx[i], ky[i]); c != 0 {
				return c, true
			}
			if c, ok := refCompare(x[kx[i]], y[ky[i]]); c != 0 || !ok {
				return c, ok
			}
		}
		return cmpInt(len(kx), len(ky)), true
	}
	return 0, true // null, or equal booleans
}

func refRank(v any) int {
	switch x := v.(type) {
	case nil:
		return 0
	case bool:
		if x {
			return 2
		}
		return 1
	case json.Number:
		return 3
	case string:
		return 4
	case []any:
		return 5
	}
	return 6
}

func refRat(n json.Number) (*big.Rat, bool) {
	s := string(n)
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		exp := strings.TrimLeft(strings.TrimLeft(s[i+1:], "+-"), "0")
		if len(exp) > 3 {
			return nil, false
		}
	}
	if len(s) > 400 {
		return nil, false
	}
	r, ok := new(big.Rat).SetString(s)
	return r, ok
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// refValue decodes one JSON text as encoding/json does.
func refValue(text []byte) (any, error) {
	if !json.Valid(text) {
		return nil, ErrInvalidJSON
	}
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}
