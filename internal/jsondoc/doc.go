// Package jsondoc is the JSON machinery that works on raw bytes, without
// building a tree or using reflection:
//
//   - a validating scanner (SkipValue, ScanString, ScanNumber, ...) that
//     agrees with encoding/json on what is valid, for the index extractor
//     and the canonical encoding, with errors wrapping ErrInvalidJSON;
//   - AppendString, encoding/json's string encoding (without its HTML
//     escaping, and with U+0085 escaped too), for the event encoders;
//   - the strict reading of text from outside: CheckText (valid UTF-8,
//     no unpaired surrogate escape), which CompactObject applies to data;
//   - the document operations of a write: CompactObject (validate and
//     compact a document's data, escaping the line separators U+2028,
//     U+2029 and U+0085 in its strings), MergePatch (an update, RFC 7396)
//     and DiffData (what changed, for the diff field of version events).
package jsondoc
