// Drives the real fauna v10 driver against the Fauna front for the Go
// tests: node driver10.js <scenario> [token or query form], with FAUNA_PORT and
// FAUNA_HTTP set as for driver.js (fetch: the driver's FetchClient, on
// Node's fetch, which speaks HTTP/1.1). It prints one JSON line per thing
// it saw, as driver.js does.
'use strict'
const fauna = require('fauna')
const { fql } = fauna

const port = Number(process.env.FAUNA_PORT)
const mode = process.env.FAUNA_HTTP || 'h2c'
const url = `${mode === 'tls' ? 'https' : 'http'}://127.0.0.1:${port}`
const client = mode === 'fetch'
  ? new fauna.Client({ secret: 'secret', endpoint: new URL(url) }, new fauna.FetchClient({ url, fetch_keepalive: false }))
  : new fauna.Client({ secret: 'secret', endpoint: new URL(url) })
function out(o) { process.stdout.write(JSON.stringify(o) + '\n') }

// event: a summary of a decoded event, with the checks that the driver
// decoded the tagged document (a Document, its coll a Module, ts a TimeStub).
function event(label, e) {
  const d = e.data
  const o = { label, type: e.type, txn_ts: e.txn_ts, cursor: e.cursor }
  if (d) {
    o.isDoc = d instanceof fauna.Document
    o.id = d.id
    o.coll = d.coll && d.coll.name
    o.ts = d.ts && d.ts.isoString
    o.name = d.name
  }
  return o
}

async function streamAll(label, source, n) {
  const s = client.stream(source)
  let seen = 0
  for await (const e of s) {
    out(event(label, e))
    if (++seen === n) break
  }
  s.close()
}

async function main() {
  const [scenario, token] = process.argv.slice(2)
  switch (scenario) {
    case 'stream': // n events (default 3) from a minted token
      await streamAll('stream', new fauna.StreamToken(token), Number(process.argv[4] || 3))
      break
    case 'query': { // two events from an event source made by a query, with interpolated values
      const queries = {
        all: fql`spells.all().eventSource()`,
        doc: fql`Set.single(spells.byId(${'1'})).eventSource()`,
        index: fql`${fql`spells`}.spells_by_element(${'fire'}).eventSource()`,
      }
      await streamAll('query', queries[token], 2)
      break
    }
    case 'feed': { // the first page of a feed, two events; after start_ts if given
      const opts = { page_size: 2 }
      if (process.argv[4]) opts.start_ts = Number(process.argv[4])
      const feed = client.feed(new fauna.StreamToken(token), opts)
      const page = await feed.nextPage()
      out({ label: 'page', type: 'page', has_next: page.hasNext, cursor: page.cursor, events: Array.from(page.events, e => event("feed", e)) })
      break
    }
    default:
      throw new Error('unknown scenario ' + scenario)
  }
  out({ label: 'done', type: 'done' })
  client.close()
}
main().catch(e => { out({ label: 'crash', message: String(e && e.stack || e) }); process.exit(1) })
