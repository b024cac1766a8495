module github.com/tidings/tidings

go 1.26

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/google/btree v1.1.3 // indirect
	go.uber.org/goleak v1.3.0 // indirect
)
