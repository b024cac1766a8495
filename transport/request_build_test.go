package transport

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/tidings/tidings/subscription"
	"github.com/tidings/tidings/txlog"
)

// What NewStreamRequest makes, sent as a JSON body or as Query, is read
// back by the handlers as the same target and options.
func TestNewStreamRequestRoundTrip(t *testing.T) {
	match, err := subscription.Match("spells_by_element", "fire", 3, nil)
	if err != nil {
		t.Fatal(err)
	}
	cursor := txlog.Cursor{Log: txlog.NewID(), Pos: txlog.AfterTxn(42)}.String()
	for _, tc := range []struct {
		target subscription.Target
		opt    subscription.Options
	}{
		{subscription.Collection("spells"), subscription.Options{}},
		{subscription.Document(txlog.Ref{Collection: "spells", ID: "a b&c"}),
			subscription.Options{Fields: subscription.FieldPrev | subscription.FieldDiff, Cursor: cursor}},
		{match, subscription.Options{Fields: subscription.FieldIndex, Snapshot: true, Updates: true, Data: true, SnapshotPageSize: 7}},
	} {
		req, err := NewStreamRequest(tc.target, tc.opt)
		if err != nil {
			t.Fatal(err)
		}
		body, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		fromBody, err := decodeStreamRequest(bytes.NewReader(body))
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		fromQuery, err := queryStreamRequest(req.Query())
		if err != nil {
			t.Fatalf("%s: %v", req.Query().Encode(), err)
		}
		for how, r := range map[string]StreamRequest{"body": fromBody, "query": fromQuery} {
			target, opt, err := r.target()
			if err != nil {
				t.Fatalf("%s %s: %v", how, body, err)
			}
			if target.String() != tc.target.String() || !reflect.DeepEqual(opt, tc.opt) {
				t.Errorf("%s: %s %+v, want %s %+v", how, target, opt, tc.target, tc.opt)
			}
		}
	}
	if _, err := NewStreamRequest(subscription.Target{}, subscription.Options{}); err == nil {
		t.Error("a target of no kind made a request")
	}
}
