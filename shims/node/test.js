'use strict';
// `node --test shims/node/` runs files named test.js, *.test.js, test-*.js, ...
// but not test_protocol.js (the name the other shims use): this pulls it in.
require('./test_protocol');
