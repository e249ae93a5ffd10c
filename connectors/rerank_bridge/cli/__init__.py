"""The `rerank-bridge` command, in a package of its own that every install
has: each subcommand's flags come from a module that imports nothing heavy,
and its implementation (torch for `serve`, aiohttp for `proxy`, ir-measures
for `eval`) is imported only when that subcommand runs, so each extra's
install starts the commands it serves."""
