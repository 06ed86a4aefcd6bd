package exchange

import "github.com/libp2p/go-libp2p/core/protocol"

// Protocol is archy's piece exchange: a peer watches which leaves of a
// file another peer holds (pushed as the holder gets them, so a flash crowd
// shares pieces before anyone has the whole file) and asks for leaves by
// index, or for any block by CID.
//
// Every message is a request on a fresh stream:
//
//	WATCH  op=1 cid            → frames: 'H' n idx…  (pieces held, as they arrive) | 'C' (has all) | 'N' (not held, stream ends)
//	GET    op=2 cid flags n idx… → per idx: status [len data | n peerID…]   (BUSY: no slot free, ask again later)
//	BLOCK  op=3 cid            → status [len data]
//
// Integers are uvarints; a CID or peer ID is a uvarint length and bytes.
const Protocol protocol.ID = "/archy/piece/1.1.0"

const (
	opWatch = 1
	opGet   = 2
	opBlock = 3

	flagLastResort = 1

	statusOK       = 0
	statusDontHave = 1
	statusRefused  = 2
	statusBusy     = 3

	frameHave     = 'H'
	frameComplete = 'C'
	frameNotHeld  = 'N'

	maxGetPieces = 64 // pieces in one GET
	maxHints     = 4  // peers named in one refusal
)
