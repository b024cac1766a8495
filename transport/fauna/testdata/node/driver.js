// Drives the real faunadb v4 driver against the Fauna front for the Go
// tests: node driver.js <scenario>, with FAUNA_PORT set, and FAUNA_HTTP
// the way to reach it: h2c (the driver's own http2 on http://), fetch
// (HTTP/1.1 through cross-fetch, as the driver does when given a fetch)
// or tls (its http2 on https://, trusting NODE_EXTRA_CA_CERTS). It prints one JSON
// line per thing it saw; the Go test judges them and writes to the broker
// between them. Lines from stdin ("go") let a scenario wait for the test.
'use strict'
const faunadb = require('faunadb')
const q = faunadb.query
const readline = require('readline')

const port = Number(process.env.FAUNA_PORT)
const mode = process.env.FAUNA_HTTP || 'h2c'
function client(secret) {
  const opts = { secret: secret || 'secret', domain: '127.0.0.1', port, scheme: mode === 'tls' ? 'https' : 'http' }
  if (mode === 'fetch') opts.fetch = require('cross-fetch')
  return new faunadb.Client(opts)
}
function out(o) { process.stdout.write(JSON.stringify(o) + '\n') }

// doc: a summary of a decoded document value, with the checks that the
// driver decoded the tagged JSON (a Ref, a number ts).
function doc(d) {
  if (d === null || d === undefined) return d
  return {
    isRef: d.ref instanceof faunadb.values.Ref,
    id: d.ref && d.ref.id,
    collection: d.ref && d.ref.collection && d.ref.collection.id,
    ts: d.ts,
    data: d.data,
  }
}
function summary(label, e) {
  const o = { label, type: e.type, txn: e.txn }
  if (e.type === 'start') o.event = e.event
  if (e.type === 'error') {
    const err = e.event
    o.name = err && err.name
    o.message = err && err.message
    o.status = err && err.requestResult && err.requestResult.statusCode
    o.description = err && err.description
    return o
  }
  if (e.event && typeof e.event === 'object') {
    const ev = e.event
    o.action = ev.action
    if ('document' in ev) o.document = doc(ev.document)
    if ('diff' in ev) o.diff = doc(ev.diff)
    if ('prev' in ev) o.prev = doc(ev.prev)
    if ('index' in ev) {
      o.index = {
        terms: ev.index.terms.map(t => (t instanceof faunadb.values.Ref ? { ref: t.id } : t)),
        values: ev.index.values,
      }
    }
    if (e.type === 'snapshot') o.snapshot = doc(ev)
  }
  return o
}

const stdin = readline.createInterface({ input: process.stdin })
const waiting = []
stdin.on('line', () => { const w = waiting.shift(); if (w) w() })
function go() { return new Promise(resolve => waiting.push(resolve)) }

function stream(c, label, expr, opts, types, kind) {
  const s = (kind === 'document' ? c.stream.document : c.stream)(expr, opts)
  for (const t of types) s.on(t, (_, e) => on(label, t, _, e))
  s.start()
  return s
}
// The driver's listeners get (event.event, event), or the error.
function on(label, t, data, whole) {
  if (t === 'error') out(summary(label, { type: 'error', event: data }))
  else if (t === 'snapshot') out({ label, type: 'snapshot', snapshot: doc(data) })
  else out(summary(label, whole))
}

async function main() {
  const scenario = process.argv[2]
  const c = client()
  const all = ['start', 'version', 'set', 'error', 'history_rewrite']
  switch (scenario) {
    case 'doc':
      stream(c, 'doc', q.Ref(q.Collection('spells'), '1'), { fields: ['action', 'document', 'diff', 'prev'] }, all)
      break
    case 'refs': // the other two spellings of a document ref
      stream(c, 'value', new faunadb.values.Ref('1', new faunadb.values.Ref('spells', faunadb.values.Native.COLLECTIONS)), {}, all)
      stream(c, 'path', q.Ref('collections/spells/1'), {}, all)
      break
    case 'set':
      stream(c, 'match', q.Match(q.Index('spells_by_element'), 'fire'), { fields: ['action', 'document', 'index'] }, all)
      stream(c, 'documents', q.Documents(q.Collection('spells')), { fields: ['action', 'document', 'index'] }, all)
      stream(c, 'all', q.Match(q.Index('all_spells')), {}, all)
      break
    case 'document':
      stream(c, 'document', q.Ref(q.Collection('spells'), '1'), {}, ['start', 'snapshot', 'version', 'error'], 'document')
      break
    case 'errors':
      stream(c, 'missing', q.Ref(q.Collection('spells'), '404'), {}, all)
      await go()
      stream(c, 'unknown-index', q.Match(q.Index('nope'), 'x'), {}, all)
      await go()
      stream(c, 'bare-collection', q.Collection('spells'), {}, all)
      await go()
      stream(client('wrong'), 'unauthorized', q.Ref(q.Collection('spells'), '1'), {}, all)
      await go()
      if (mode === 'fetch') { out({ label: 'done', type: 'done' }); break } // one connection a stream: no limit to meet
      for (let i = 0; i < 100; i++) stream(c, 'limit', q.Ref(q.Collection('spells'), '1'), {}, all)
      await go()
      stream(c, 'over', q.Ref(q.Collection('spells'), '1'), {}, all)
      break
    default:
      throw new Error('unknown scenario ' + scenario)
  }
  await go() // the test says when it has seen enough
  process.exit(0)
}
main().catch(e => { out({ label: 'crash', message: String(e && e.stack || e) }); process.exit(1) })
