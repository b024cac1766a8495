package checkpoint

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/tidings/tidings/txlog"
)

// encodeCheckpoint returns the bytes of a checkpoint of docs and of the
// index entries sets made under schema.
func encodeCheckpoint(log txlog.ID, txn txlog.Txn, docs []Doc, schema uint64, sets [][]Entry) []byte {
	var buf bytes.Buffer
	cw := NewWriter(&buf, log, txn)
	for _, d := range docs {
		cw.Add(d.Ref, d.TS, d.Data)
	}
	cw.Index(schema, len(sets))
	for _, set := range sets {
		cw.StartSet(len(set))
		for _, e := range set {
			cw.AddEntry(e.Key, e.Terms, e.Values)
		}
	}
	if err := cw.Finish(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// decoded is a checkpoint read back whole.
type decoded struct {
	h      Header
	docs   []Doc
	schema uint64
	sets   [][]Entry
}

// decodeCheckpoint decodes data, collecting its documents and entries.
func decodeCheckpoint(data []byte) (*decoded, error) {
	d, err := NewDecoder(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return nil, err
	}
	c := &decoded{h: d.Header()}
	if err := d.Docs(func(doc Doc) { c.docs = append(c.docs, doc) }); err != nil {
		return nil, err
	}
	c.schema, _ = d.Schema()
	for {
		n, ok, err := d.NextSet()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
		set := []Entry{}
		for range n {
			key, terms, values, err := d.Entry()
			if err != nil {
				return nil, err
			}
			set = append(set, Entry{Key: string(key), Terms: terms, Values: values})
		}
		c.sets = append(c.sets, set)
	}
	return c, d.Finish()
}

var (
	fuzzDocs = []Doc{
		{Ref: txlog.Ref{Collection: "spells", ID: "1"}, TS: 5, Data: []byte(`{"element":"fire"}`)},
		{Ref: txlog.Ref{Collection: "spells", ID: "2"}, TS: 7, Data: []byte(`{"element":"water","level":3}`)},
		{Ref: txlog.Ref{Collection: "wands", ID: "1"}, TS: 9, Data: []byte(`{}`)},
	}
	fuzzSets = [][]Entry{
		{{Key: "\x40fire\x00\x011", Terms: 7, Values: 7}, {Key: "\x40water\x00\x01\x32\x80\x00\x00\x013\x002", Terms: 8, Values: 15}},
		{},
		{{Key: "a1", Terms: 1, Values: 1}, {Key: "a12", Terms: 0, Values: 2}, {Key: "b", Terms: 0, Values: 0}},
	}
)

// FuzzDecodeCheckpoint feeds checkpoint files to the decoder, as found and
// with the checksum made right (so that the fuzzer gets past it to the
// frames and the index entries). Only a damaged error may come out, never
// a panic or a huge allocation, and what decodes must encode and decode
// back to the same documents and entries (the encoding is not canonical:
// a varint may be overlong). A version 1 file decodes with no entries.
func FuzzDecodeCheckpoint(f *testing.F) {
	id := txlog.NewID()
	f.Add(encodeCheckpoint(id, 9, fuzzDocs, 0xfeed, fuzzSets))
	f.Add(encodeCheckpoint(id, 9, fuzzDocs, 0, nil))
	f.Add(encodeCheckpoint(id, 1, nil, 0, nil))
	f.Add(encodeCheckpoint(id, 1, nil, 7, [][]Entry{{{Key: "x", Terms: 0, Values: 0}}}))
	f.Add(encodeCheckpoint(id, 9, fuzzDocs, 0, nil)[:40])
	f.Add([]byte(magic))
	if v1, err := os.ReadFile("testdata/v1.ckpt"); err == nil {
		f.Add(v1)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(data []byte) {
			c, err := decodeCheckpoint(data)
			if err != nil {
				if !errors.Is(err, ErrDamaged) {
					t.Fatalf("an error that is not damage: %v", err)
				}
				return
			}
			if c.h.Version == 1 && (c.schema != 0 || c.sets != nil) {
				t.Fatalf("a version 1 checkpoint with index entries")
			}
			again := encodeCheckpoint(c.h.Log, c.h.Txn, c.docs, c.schema, c.sets)
			c2, err := decodeCheckpoint(again)
			if err != nil {
				t.Fatalf("a checkpoint encoded from what was decoded: %v", err)
			}
			if c2.h.Log != c.h.Log || c2.h.Txn != c.h.Txn || len(c2.docs) != len(c.docs) || c2.schema != c.schema || len(c2.sets) != len(c.sets) {
				t.Fatalf("decoded again: %+v %d docs %x %d sets, want %+v %d %x %d",
					c2.h, len(c2.docs), c2.schema, len(c2.sets), c.h, len(c.docs), c.schema, len(c.sets))
			}
			for i, v := range c.docs {
				w := c2.docs[i]
				if v.Ref != w.Ref || v.TS != w.TS || !bytes.Equal(v.Data, w.Data) {
					t.Fatalf("document %d decoded again: %+v, want %+v", i, w, v)
				}
			}
			for i, set := range c.sets {
				if len(c2.sets[i]) != len(set) {
					t.Fatalf("set %d decoded again: %d entries, want %d", i, len(c2.sets[i]), len(set))
				}
				for j, e := range set {
					if c2.sets[i][j] != e {
						t.Fatalf("set %d entry %d decoded again: %+v, want %+v", i, j, c2.sets[i][j], e)
					}
					if j > 0 && set[j-1].Key >= e.Key {
						t.Fatalf("set %d entry %d: %q after %q", i, j, e.Key, set[j-1].Key)
					}
				}
			}
		}
		check(data)
		if len(data) >= 8 {
			fixed := bytes.Clone(data)
			binary.BigEndian.PutUint64(fixed[len(fixed)-8:], xxhash.Sum64(fixed[:len(fixed)-8]))
			check(fixed)
		}
	})
}
