package index

import (
	"slices"
	"testing"
)

func TestParsePath(t *testing.T) {
	keys, err := ParsePath("stats.level")
	if err != nil || !slices.Equal(keys, []string{"stats", "level"}) {
		t.Errorf("ParsePath(stats.level) = %q, %v", keys, err)
	}
	if keys, err := ParsePath("élément"); err != nil || len(keys) != 1 {
		t.Errorf("ParsePath(élément) = %q, %v", keys, err)
	}
}
