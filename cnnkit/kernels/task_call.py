"""Parallel loops that call their task by its address, so that they do not carry its code.

Numba compiles a ``prange`` loop into a function of its own, links it into the kernel that
holds it, and links every compiled function either calls into them. Each link has LLVM
optimise and compile the callees' code once more. The implicit GEMM's per-image task (its
register tiles unrolled) took 1.8 s to compile alone, and the loop around it 3.9 s more; an
empty loop took 0.45 s (AVX-512, one tile; ``python -m cnnkit.bench.first_step`` lists each
kernel's compiling). A loop that calls the task through its address links none of it.

A kernel run this way takes a table of (hash, address) rows, ``Tasks.table``, as its first
argument. Its compiled code holds the hash of its task's argument types (``task_hash``, a
constant), finds that row and calls the address (``call_task``); when the table has no such
row it returns the hash without doing anything, and ``Tasks.run`` compiles (or loads from
Numba's cache) the task for those argument types, adds its row and runs the kernel again. The
hash, not a table index, is what the compiled kernel holds, so a kernel loaded from the cache
in another process finds the right task, and never calls a task compiled for other types. A
kernel looks its task up before it writes anything, as it may run twice. BENCHMARKS.md,
"Parallel loops that call their task by address", has the measurements.
"""
import hashlib
import threading

import numba
import numpy as np
from numba.core import cgutils, types
from numba.extending import intrinsic


def _hash(argument_types):
    """A 63-bit hash of a tuple of Numba types (never 0: 0 marks "ran")."""
    text = repr(tuple(argument_types)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little") >> 1 or 1


def _index_and_arguments(*args):
    return (types.int64,) + tuple(map(numba.typeof, args))


@intrinsic
def task_hash(typingctx, arguments):
    """The hash of the tuple ``arguments``' element types, a constant in the compiled code."""
    if not isinstance(arguments, types.BaseTuple):
        return None
    value = _hash(arguments.types)

    def codegen(context, builder, signature, args):
        return context.get_constant(types.int64, value)
    return types.int64(arguments), codegen


@intrinsic
def call_task(typingctx, address, arguments):
    """Call the compiled function at ``address`` (``Tasks``: one compiled for exactly the
    element types of the tuple ``arguments``) with the tuple's elements; an exception it
    raises propagates as from a direct call (in a parallel loop, Numba hands it to Python as
    the cause of a SystemError)."""
    if not isinstance(address, types.Integer) or not isinstance(arguments, types.BaseTuple):
        return None

    def codegen(context, builder, signature, args):
        address_value, packed = args
        argument_types = list(arguments.types)
        values = [builder.extract_value(packed, i) for i in range(len(argument_types))]
        function_type = context.call_conv.get_function_type(types.none, argument_types)
        callee = builder.inttoptr(address_value, function_type.as_pointer())
        status, _ = context.call_conv.call_function(builder, callee, types.none,
                                                    argument_types, values)
        with cgutils.if_unlikely(builder, status.is_error):
            context.call_conv.return_status_propagate(builder, status)
        return context.get_dummy_value()
    return types.none(address, arguments), codegen


def compiled_for_tile(function, rows, vectors):
    """``function`` (a task defined inside a factory, its tile MR × NV = ``rows`` ×
    ``vectors`` taken from the factory's arguments, constants of the compiled code) as a
    cached Numba function named for its tile. Numba keeps one cache index file per function
    name, rewritten whole when a process adds to it; a name per tile gives each tile a file of
    its own, so that processes compiling different tiles at once (``tuning.precompile``,
    pytest's workers) do not rewrite each other's entries."""
    function.__qualname__ = f"{function.__qualname__}_{rows}x{vectors}"
    return numba.njit(cache=True)(function)


@numba.njit(cache=True)
def find_task(table, wanted):
    """The address in ``table``'s row for hash ``wanted``, 0 when it has none."""
    for i in range(table.shape[0]):
        if table[i, 0] == wanted:
            return table[i, 1]
    return 0


class Tasks:
    """The compiled variants of one task that kernels call by address (``task_call``).

    ``task``: the task's dispatcher; ``argument_types(*args)``: the Numba types of the tuple a
    kernel called with ``args`` passes to it (what ``task_hash`` hashes in the kernel); by
    default the task's index, an int64, then the arguments as they are."""

    def __init__(self, task, argument_types=None):
        self.task, self.argument_types = task, argument_types or _index_and_arguments
        self.table = np.zeros((0, 2), np.int64)
        self._lock = threading.Lock()

    def run(self, kernel, *args):
        """kernel(table, *args), compiling the task first if the kernel asks for it."""
        wanted = kernel(self.table, *args)
        if wanted:
            self._add(wanted, args)
            if kernel(self.table, *args):
                raise AssertionError("task_call: the kernel did not find its task")

    def _add(self, wanted, args):
        argument_types = tuple(self.argument_types(*args))
        if _hash(argument_types) != wanted:
            raise AssertionError(f"task_call: the kernel asks for a task of other argument "
                                 f"types than {argument_types}")
        with self._lock:
            if find_task(self.table, wanted):
                return
            self.task.compile(argument_types)
            result = self.task.overloads[argument_types]
            if result.signature.return_type != types.none:
                raise AssertionError("task_call: a task must return nothing")
            address = result.library.get_pointer_to_function(result.fndesc.llvm_func_name)
            self.table = np.concatenate([self.table, np.array([[wanted, address]], np.int64)])


class PerTile:
    """A kernel whose task is compiled per register tile, MR × NV = ``rows`` × ``vectors``
    (``make_task(rows, vectors)``: the task's dispatcher for that tile), called as the kernel
    without its first argument, the task table, and the two of the tile, which it takes
    after its first ``tile_at`` arguments. The task is compiled on the first call.
    ``task_types`` (the kernel's arguments, tile included): as for ``Tasks``; by default the
    task's index, an int64, then the caller's arguments as they are."""

    def __init__(self, kernel, make_task, task_types, tile_at, rows, vectors):
        if task_types is None:
            def task_types(*args):
                return _index_and_arguments(*args[:tile_at], *args[tile_at + 2:])
        self.kernel, self.make_task, self.task_types = kernel, make_task, task_types
        self.tile_at, self.rows, self.vectors, self._tasks = tile_at, rows, vectors, None

    def __call__(self, *args):
        if self._tasks is None:
            self._tasks = Tasks(self.make_task(self.rows, self.vectors), self.task_types)
        at = self.tile_at
        self._tasks.run(self.kernel, *args[:at], self.rows, self.vectors, *args[at:])
