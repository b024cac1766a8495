// Package wire encodes the events of a stream as the one-line JSON objects
// every transport sends (see package subscription for their shapes):
// start, snapshot pages, version and set events, history rewrites, status
// heartbeats and errors. The encoders append to a byte slice without
// reflection, because the broker calls them on every commit, once per
// write and field set whatever the number of subscribers, and shares the
// bytes among every subscriber that receives them. Other wire shapes (a
// protocol front's) belong here too, as encoder variants shared the same
// way.
package wire
