// Package subscription holds what a subscription is made of, apart from
// the broker that serves it: its Target (a document, a collection, or an
// index matched on terms), its Options (Fauna's opt-in fields, snapshot,
// cursor, buffer), the Event types and their JSON encoders, the document
// diff and merge patch, and the bounded Queue that holds a subscriber's
// live events.
//
// Every event is one JSON object on one line, the same in every transport:
//
//	{"type":"start","txn":T,"cursor":"…","event":T}
//	{"type":"snapshot","txn":T,"event":{"data":[…],"last":true}}
//	{"type":"version","txn":…,"cursor":"…","event":{"action":"update","document":{…},"diff":{…},"prev":{…}}}
//	{"type":"set","txn":…,"cursor":"…","event":{"action":"add","document":{"ref":{…},"ts":…},"index":{"terms":[…],"values":[…]}}}
//	{"type":"history_rewrite","txn":…,"cursor":"…","event":{"action":"insert","document":{…}}}
//	{"type":"status","txn":<latest txn>}
//	{"type":"error","txn":…,"event":{"code":"history_unavailable","description":"…","cursor":"…"}}
//
// A document is {"ref":{"collection":…,"id":…},"ts":<txn>,"data":{…}}.
// The encoders write into byte slices without reflection: the broker
// encodes each event once per write and field set and shares the bytes
// among every subscriber that receives it.
package subscription
