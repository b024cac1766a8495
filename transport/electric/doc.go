// Package electric serves a tidings broker to ElectricSQL's TypeScript
// client (@electric-sql/client, and TanStack DB's Electric collections
// above it): GET {prefix}/v1/shape, the shape protocol of Electric's sync
// service, with a collection, an index matched on its terms or one
// document for a shape.
package electric
