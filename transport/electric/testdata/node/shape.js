// Drives the real @electric-sql/client against the Electric front for the
// Go tests: node shape.js <url> <mode> <params JSON> [<offset> <handle>],
// mode longpoll or sse; with an offset and a handle the stream resumes
// there, as an application that kept them would. It syncs a Shape and
// prints one JSON line per thing it saw: the
// rows at every notification (the Shape notifies at up-to-date only), with
// the stream's offset and handle; each batch of messages of the stream;
// and errors. The Go test judges them and writes to the broker between
// them. A line "stop" on stdin, or its end, ends it.
import { ShapeStream, Shape } from '@electric-sql/client'
import readline from 'node:readline'

const [url, mode, paramsJSON, offset, handle] = process.argv.slice(2)
const out = o => process.stdout.write(JSON.stringify(o) + '\n')

const stream = new ShapeStream({
  url,
  params: JSON.parse(paramsJSON),
  liveSse: mode === 'sse',
  ...(offset ? { offset, handle } : {}),
  onError: e => { out({ type: 'error', status: e.status, name: e.name, message: String(e.message) }) },
})
stream.subscribe(msgs => {
  out({ type: 'messages', messages: msgs.map(m => m.headers.control ? { control: m.headers.control, lsn: m.headers.global_last_seen_lsn } : { op: m.headers.operation, key: m.key, value: m.value }) })
}, e => out({ type: 'error', name: e.name, message: String(e.message) }))
const shape = new Shape(stream)
shape.subscribe(({ rows }) => {
  out({ type: 'rows', offset: stream.lastOffset, handle: stream.shapeHandle, rows: [...rows].sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0) })
})
// "stop", or the end of stdin (the test is over), ends it.
const stop = () => { stream.unsubscribeAll(); process.exit(0) }
readline.createInterface({ input: process.stdin }).on('line', l => { if (l === 'stop') stop() }).on('close', stop)
