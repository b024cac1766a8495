module github.com/tidings/tidings

go 1.26

require (
	github.com/cespare/xxhash/v2 v2.3.0
	github.com/google/btree v1.1.3
	go.uber.org/goleak v1.3.0
)
