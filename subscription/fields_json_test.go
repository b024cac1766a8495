package subscription

import (
	"encoding/json"
	"errors"
	"testing"
)

func TestFieldsJSON(t *testing.T) {
	f := FieldAction | FieldDiff | FieldIndex
	b, err := json.Marshal(f)
	if err != nil || string(b) != `["action","diff","index"]` {
		t.Fatalf("%s %v", b, err)
	}
	for in, want := range map[string]Fields{
		`["action","diff","index"]`: f,
		`"prev, diff"`:              FieldPrev | FieldDiff,
		`[]`:                        DefaultFields,
		`""`:                        DefaultFields,
	} {
		var got Fields
		if err := json.Unmarshal([]byte(in), &got); err != nil || got != want {
			t.Errorf("%s: %v %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{`["author"]`, `7`, `{"a":1}`} {
		var got Fields
		if err := json.Unmarshal([]byte(in), &got); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: %v, want ErrInvalidOptions", in, err)
		}
	}
}
