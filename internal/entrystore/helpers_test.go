package entrystore

import (
	"errors"
	"fmt"
)

// Helpers that the tests of several files use: listing a set. Schemas
// and catalogs are in catalog_test.go.

// pager is a Store or a Snapshot.
type pager interface {
	Page(dst []Entry, set SetKey, after Position, n int) ([]Entry, bool, error)
}

// listSet lists a whole set through pages of n, carrying the position
// from page to page in its text form, as a cursor would.
func listSet(p pager, set SetKey, n int) ([]Entry, error) {
	var all []Entry
	var after Position
	for {
		page, more, err := p.Page(nil, set, after, n)
		if err != nil {
			return nil, err
		}
		if len(page) > n {
			return nil, fmt.Errorf("page of %d entries, asked for %d", len(page), n)
		}
		all = append(all, page...)
		if !more {
			return all, nil
		}
		if len(page) == 0 {
			return nil, errors.New("more with an empty page")
		}
		text, _ := page[len(page)-1].Position().MarshalText()
		after = Position{}
		if err := after.UnmarshalText(text); err != nil {
			return nil, err
		}
	}
}
