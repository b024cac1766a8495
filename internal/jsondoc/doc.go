// Package jsondoc is the JSON machinery that works on raw bytes, without
// building a tree or using reflection:
//
//   - a validating scanner (SkipValue, ScanString, ScanNumber, ...) that
//     agrees with encoding/json on what is valid, for the index extractor
//     and the canonical encoding, with errors wrapping ErrInvalidJSON;
//   - AppendString, encoding/json's string encoding (without its HTML
//     escaping), for the event encoders;
//   - the document operations of a write: CompactObject (validate and
//     compact a document's data), MergePatch (an update, RFC 7396) and
//     DiffData (what changed, for the diff field of version events).
package jsondoc
