package broker

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
func encodeCheckpoint(log txlog.ID, txn txlog.Txn, docs []*version) []byte {
	var buf bytes.Buffer
	cw := newCkptWriter(&buf, log, txn)
	for _, v := range docs {
		cw.doc(v)
	}
	if err := cw.finish(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// FuzzDecodeCheckpoint feeds checkpoint files to the decoder, as found and
// with the checksum made right (so that the fuzzer gets past it to the
// frames). Only a damaged error may come out, never a panic or a huge
// allocation, and what decodes must encode and decode back to the same
// documents (the encoding is not canonical: a varint may be overlong).
func FuzzDecodeCheckpoint(f *testing.F) {
	id := txlog.NewID()
	docs := []*version{
		{ref: txlog.Ref{Collection: "spells", ID: "1"}, ts: 5, data: []byte(`{"element":"fire"}`)},
		{ref: txlog.Ref{Collection: "spells", ID: "2"}, ts: 7, data: []byte(`{"element":"water","level":3}`)},
		{ref: txlog.Ref{Collection: "wands", ID: "1"}, ts: 9, data: []byte(`{}`)},
	}
	f.Add(encodeCheckpoint(id, 9, docs))
	f.Add(encodeCheckpoint(id, 1, nil))
	f.Add(encodeCheckpoint(id, 9, docs)[:40])
	f.Add([]byte(ckptMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		check := func(data []byte) {
			c, err := decodeCheckpoint(bufio.NewReader(bytes.NewReader(data)), int64(len(data)))
			if err != nil {
				if !errors.Is(err, errCheckpointDamaged) {
					t.Fatalf("an error that is not damage: %v", err)
				}
				return
			}
			again := encodeCheckpoint(c.log, c.txn, c.docs)
			c2, err := decodeCheckpoint(bufio.NewReader(bytes.NewReader(again)), int64(len(again)))
			if err != nil {
				t.Fatalf("a checkpoint encoded from decoded documents: %v", err)
			}
			if c2.log != c.log || c2.txn != c.txn || len(c2.docs) != len(c.docs) {
				t.Fatalf("decoded again: %v %d %d docs, want %v %d %d", c2.log, c2.txn, len(c2.docs), c.log, c.txn, len(c.docs))
			}
			for i, v := range c.docs {
				w := c2.docs[i]
				if v.ref != w.ref || v.ts != w.ts || !bytes.Equal(v.data, w.data) {
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
