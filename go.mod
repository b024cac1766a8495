module github.com/tidings/tidings

go 1.26

require (
	github.com/cespare/xxhash/v2 v2.3.0
	github.com/google/btree v1.1.3
	github.com/tmaxmax/go-sse v0.12.0
	go.uber.org/goleak v1.3.0
)
