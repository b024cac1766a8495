package subscription

import "testing"

func TestTypeString(t *testing.T) {
	want := map[Type]string{TypeStart: "start", TypeSnapshot: "snapshot", TypeVersion: "version", TypeSet: "set",
		TypeHistoryRewrite: "history_rewrite", TypeStatus: "status", TypeError: "error", 0: "Type(0)", 8: "Type(8)"}
	for ty, s := range want {
		if ty.String() != s {
			t.Errorf("Type(%d).String() = %q, want %q", uint8(ty), ty.String(), s)
		}
	}
}
