// Bundled by esbuild for the browser test: the stock Yjs client stack, untouched.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'

window.Y = Y
window.WebsocketProvider = WebsocketProvider
