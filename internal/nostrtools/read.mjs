// Independent check of archy's Nostr events: nostr-tools (not go-nostr)
// reads them from a relay over a websocket and verifies id and signature.
// Usage: node nostr-tools-read.mjs RELAY_URL
// Prints one JSON object:
// {"events":[{id,pubkey,kind,d,tags,valid,tamperedValid}], "eose":true}.
import { Relay, useWebSocketImplementation } from 'nostr-tools/relay'
import { verifyEvent, getEventHash } from 'nostr-tools/pure'
import WebSocket from 'ws'

useWebSocketImplementation(WebSocket)

const url = process.argv[2]
const timer = setTimeout(() => { console.error('timeout waiting for EOSE'); process.exit(2) }, 15000)
const relay = await Relay.connect(url)
const out = { events: [], eose: false }
const sub = relay.subscribe([{ kinds: [30078], '#t': ['archy-app'] }], {
  onevent(ev) {
    const d = (ev.tags.find(t => t[0] === 'd') || [])[1]
    // verifyEvent checks the Schnorr signature and that id is the hash.
    // Fresh plain copies: nostr-tools caches a verdict on the object it saw.
    const plain = () => ({ id: ev.id, pubkey: ev.pubkey, created_at: ev.created_at, kind: ev.kind, tags: ev.tags, content: ev.content, sig: ev.sig })
    const valid = verifyEvent(plain()) && getEventHash(plain()) === ev.id
    // A one-byte change must fail in this implementation too.
    const tampered = { ...plain(), content: ev.content + ' ' }
    const tags = Object.fromEntries(ev.tags.filter(t => t.length >= 2).map(t => [t[0], t[1]]))
    out.events.push({ id: ev.id, pubkey: ev.pubkey, kind: ev.kind, d, tags, valid, tamperedValid: verifyEvent(tampered) })
  },
  oneose() {
    out.eose = true
    sub.close()
    relay.close()
    clearTimeout(timer)
    console.log(JSON.stringify(out))
    process.exit(0)
  },
})
