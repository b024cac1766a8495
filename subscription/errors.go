package subscription

import "errors"

// Sentinel errors, tested with errors.Is.
var (
	// ErrInvalidTarget: the target names no known collection or index, or
	// gives the wrong number of terms.
	ErrInvalidTarget = errors.New("subscription: invalid target")
	// ErrInvalidOptions: an option is out of range or unknown.
	ErrInvalidOptions = errors.New("subscription: invalid options")
)
