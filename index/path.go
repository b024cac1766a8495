package index

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// ParsePath splits a field path into the keys it follows: "stats.level"
// is ["stats", "level"]. Every key must be non-empty valid UTF-8; a key
// cannot contain a dot. Errors wrap ErrInvalidPath.
//
// A path reads through objects only: where a key on the way is missing or
// its value is not an object, the field is missing (null). The last key's
// value may be an array, which fans out into one entry per element.
func ParsePath(path string) ([]string, error) {
	if path == "" {
		return nil, fmt.Errorf("%w: empty path", ErrInvalidPath)
	}
	if !utf8.ValidString(path) {
		return nil, fmt.Errorf("%w: %q is not valid UTF-8", ErrInvalidPath, path)
	}
	keys := strings.Split(path, ".")
	for _, k := range keys {
		if k == "" {
			return nil, fmt.Errorf("%w: %q has an empty key (a leading, trailing or doubled dot)", ErrInvalidPath, path)
		}
	}
	return keys, nil
}
