// tus_server.mjs — a real tus 1.0 server for the integration tests:
// @tus/server 2.x with @tus/file-store, on 127.0.0.1 at path /files/.
//
//   node tus_server.mjs DIR [--port N] [--require-auth TOKEN] [--relative-location]
//
// DIR receives one file per upload (named by the upload id, the last path
// segment of the upload URL) and its DIR/<id>.json info (size, offset,
// metadata). Prints "PORT <n>" once listening (--port 0, the default, picks
// a free port). --require-auth refuses every request without
// "Authorization: Bearer TOKEN" (401). --relative-location answers creation
// with a relative Location (/files/<id>), as some servers do.
import { Server } from '@tus/server';
import { FileStore } from '@tus/file-store';

const args = process.argv.slice(2);
let dir = null, port = 0, token = null, relative = false;
for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--port') port = Number(args[++i]);
    else if (a === '--require-auth') token = args[++i];
    else if (a === '--relative-location') relative = true;
    else if (!a.startsWith('--') && dir === null) dir = a;
    else {
        console.error(`tus_server: unknown argument ${a}`);
        process.exit(2);
    }
}
if (!dir || !Number.isInteger(port) || (token !== null && !token)) {
    console.error('usage: node tus_server.mjs DIR [--port N] [--require-auth TOKEN] [--relative-location]');
    process.exit(2);
}

const server = new Server({
    path: '/files',
    datastore: new FileStore({ directory: dir }),
    relativeLocation: relative,
    // @tus/server: throwing {status_code, body} from this hook answers with it
    async onIncomingRequest(req) {
        if (token !== null && req.headers.get('authorization') !== `Bearer ${token}`)
            throw { status_code: 401, body: 'Unauthorized: missing or wrong bearer token\n' };
    },
});

const http = server.listen({ host: '127.0.0.1', port }, () => {
    console.log(`PORT ${http.address().port}`);
});
for (const sig of ['SIGTERM', 'SIGINT'])
    process.on(sig, () => http.close(() => process.exit(0)) && setTimeout(() => process.exit(0), 500));
