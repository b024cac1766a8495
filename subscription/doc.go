// Package subscription is what a subscription is made of, apart from the
// broker that serves it: its Target (a document, a collection, or an index
// matched on terms: Document, Collection, Match), its Options (Fauna's
// opt-in Fields, snapshot, cursor, buffer, heartbeat), and the Events it
// delivers, with their Types and error codes. The broker's Subscribe and
// ReadPage take a Target and Options; its iterators yield Events; the
// transport and the client speak the same types.
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
// An Event carries its line as JSON, encoded once per write and field set
// and shared by every subscriber that receives it. The encoders, the
// subscriber's queue and the document diff and merge patch are the
// broker's machinery, in internal/wire, internal/queue and
// internal/jsondoc.
package subscription
