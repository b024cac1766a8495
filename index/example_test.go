package index_test

import (
	"fmt"
	"slices"

	"github.com/tidings/tidings/index"
)

// Terms match as JSON values: 1 and 1.0 are one term, "1" another; and
// values sort in Fauna's order, which is how a set's members are listed.
func ExampleValueOf() {
	one, _ := index.ValueOf(1)
	oneFloat, _ := index.ParseValue([]byte(`1.0`))
	oneString, _ := index.ValueOf("1")
	fmt.Println(one == oneFloat, one == oneString)

	var vs []index.Value
	for _, text := range []string{`"fire"`, `[1,2]`, `2.50`, `null`, `true`, `{"b":1,"a":2}`, `-3`} {
		v, err := index.ParseValue([]byte(text))
		if err != nil {
			panic(err)
		}
		vs = append(vs, v)
	}
	slices.SortFunc(vs, index.Value.Compare)
	fmt.Println(vs)
	// Output:
	// true false
	// [null true -3 2.5 "fire" [1,2] {"a":2,"b":1}]
}

// A schema with an index on the spells collection: matched on the element
// field, its members ordered by level.
func ExampleSchema() {
	schema := index.Schema{
		Collections: []string{"spells"},
		Indexes: []index.Definition{{
			Name:       "spells_by_element",
			Collection: "spells",
			Terms:      []string{"element"},
			Values:     []string{"stats.level"},
		}},
	}
	for _, def := range schema.Indexes {
		for _, path := range def.Values {
			keys, err := index.ParsePath(path)
			fmt.Println(def.Name, keys, err)
		}
	}
	// Output:
	// spells_by_element [stats level] <nil>
}
