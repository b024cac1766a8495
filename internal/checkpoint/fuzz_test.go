package checkpoint

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/tidings/tidings/txlog"
)

// encodeCheckpoint returns the bytes of a checkpoint of docs.
func encodeCheckpoint(log txlog.ID, txn txlog.Txn, docs []Doc) []byte {
	var buf bytes.Buffer
	cw := NewWriter(&buf, log, txn)
	for _, d := range docs {
		cw.Add(d.Ref, d.TS, d.Data)
	}
	if err := cw.Finish(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// decodeCheckpoint decodes data, collecting its documents.
func decodeCheckpoint(data []byte) (Header, []Doc, error) {
	var docs []Doc
	h, err := Decode(bufio.NewReader(bytes.NewReader(data)), int64(len(data)), func(d Doc) { docs = append(docs, d) })
	return h, docs, err
}

// FuzzDecodeCheckpoint feeds checkpoint files to the decoder, as found and
// with the checksum made right (so that the fuzzer gets past it to the
// frames). Only a damaged error may come out, never a panic or a huge
// allocation, and what decodes must encode and decode back to the same
// documents (the encoding is not canonical: a varint may be overlong).
func FuzzDecodeCheckpoint(f *testing.F) {
	id := txlog.NewID()
	docs := []Doc{
		{Ref: txlog.Ref{Collection: "spells", ID: "1"}, TS: 5, Data: []byte(`{"element":"fire"}`)},
		{Ref: txlog.Ref{Collection: "spells", ID: "2"}, TS: 7, Data: []byte(`{"element":"water","level":3}`)},
		{Ref: txlog.Ref{Collection: "wands", ID: "1"}, TS: 9, Data: []byte(`{}`)},
	}
	f.Add(encodeCheckpoint(id, 9, docs))
	f.Add(encodeCheckpoint(id, 1, nil))
	f.Add(encodeCheckpoint(id, 9, docs)[:40])
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(data []byte) {
			c, docs, err := decodeCheckpoint(data)
			if err != nil {
				if !errors.Is(err, ErrDamaged) {
					t.Fatalf("an error that is not damage: %v", err)
				}
				return
			}
			again := encodeCheckpoint(c.Log, c.Txn, docs)
			c2, docs2, err := decodeCheckpoint(again)
			if err != nil {
				t.Fatalf("a checkpoint encoded from decoded documents: %v", err)
			}
			if c2 != c || len(docs2) != len(docs) {
				t.Fatalf("decoded again: %v %d %d docs, want %v %d %d", c2.Log, c2.Txn, len(docs2), c.Log, c.Txn, len(docs))
			}
			for i, v := range docs {
				w := docs2[i]
				if v.Ref != w.Ref || v.TS != w.TS || !bytes.Equal(v.Data, w.Data) {
					t.Fatalf("document %d decoded again: %+v, want %+v", i, w, v)
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
