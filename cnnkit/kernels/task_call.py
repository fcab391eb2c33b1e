"""Kernels that hand their tasks to one parallel loop, which calls each task by its address, so
that no kernel carries a parallel loop of its own, or its task's code.

Numba compiles a ``prange`` loop into a function of its own (a "gufunc" and its launcher),
links it into the kernel that holds it, and links every compiled function either calls into
them; each link has LLVM optimise and compile the callees' code once more. The implicit GEMM's
per-image task (its register tiles unrolled) took 1.8 s to compile alone, and a loop around it
3.9 s more; an empty loop took 0.45 s (AVX-512, one tile). Here the one parallel loop,
``_every_task``, is compiled once per machine (then loaded from Numba's cache), and a kernel is
plain code that ends by calling ``run_tasks(table, count, arguments)``: the loop then runs
task(i, *arguments) for i < count on Numba's threads, as a ``prange`` over i would, calling the
task through its compiled address. ``python -m cnnkit.bench.first_step`` lists each kernel's
compiling; BENCHMARKS.md, "Parallel loops that call their task by address" and "One parallel
loop for every kernel", has the measurements.

The kernel takes a table of rows (hash, task address), ``Tasks.table``, as its first argument
(row 0 the loop's).
Its compiled code holds the hash of its task's argument types (``task_hash``, a constant) and
finds that row; when the table has no such row it returns the hash without doing anything, and
``Tasks.run`` compiles (or loads from Numba's cache) the task for those argument types, adds
the row and runs the kernel again. The hash, not a table index, is what the compiled kernel
holds, so a kernel loaded from the cache in another process finds the right task, and never
calls a task compiled for other types. A kernel looks its task up before it writes anything, as
it may run twice.

The loop passes each task its index and one pointer, to the kernel's arguments as it stored
them in its own frame (``run_tasks``); a trampoline that the kernel's compiled code holds for
its argument types (``_trampoline``) reads them there and calls the task. Nothing is copied or
reference-counted per task, and an exception a task raises propagates as from a direct call (in
the parallel loop, Numba hands it to Python as the cause of a SystemError).
"""
import hashlib
import threading

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic


def _hash(argument_types):
    """A 63-bit hash of a tuple of Numba types (never 0: a kernel returns 0 when it ran, and
    row 0 of a table, the loop's, has 0)."""
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
    """The row of ``table`` for hash ``wanted``, −1 when it has none."""
    for i in range(table.shape[0]):
        if table[i, 0] == wanted:
            return i
    return -1


@intrinsic
def address_of(typingctx, values):
    """The address (an int64) of a copy of ``values`` in the caller's frame, valid until the
    caller returns."""
    def codegen(context, builder, signature, args):
        slot = cgutils.alloca_once_value(builder, args[0])
        return builder.ptrtoint(slot, context.get_value_type(types.int64))
    return types.int64(values), codegen


@numba.njit(parallel=True, cache=True)
def _every_task(trampoline, count, packed):
    """The one parallel loop: trampoline(i, packed) for i < ``count`` on Numba's threads."""
    for i in numba.prange(count):
        call_task(trampoline, (np.int64(i), packed))


@numba.njit(inline="always")
def run_tasks(table, count, arguments):
    """task(i, *arguments) for each i < ``count``, in parallel; 0, or when ``table`` has no
    task for these argument types, their hash (a kernel returns it: ``Tasks.run``)."""
    indexed = (np.int64(0),) + arguments
    row = find_task(table, task_hash(indexed))
    if row < 0:
        return task_hash(indexed)
    call_task(table[0, 1], (_trampoline(arguments), np.int64(count),  # row 0: the loop
                            address_of((table[row, 1], arguments))))
    return 0


@intrinsic
def _trampoline(typingctx, arguments):
    """The address of a function (index, address) emitted into the caller's compiled code:
    it reads the pair (task address, arguments) stored at ``address`` (``run_tasks``), the
    arguments of ``arguments``' types, and calls the task with the index and them, its
    arrays as views that own nothing (``_unowned``)."""
    if not isinstance(arguments, types.BaseTuple):
        return None
    task_types = [types.int64] + list(arguments.types)
    packed = types.Tuple((types.int64, arguments))

    def codegen(context, builder, signature, args):
        call_conv = context.call_conv
        function_type = call_conv.get_function_type(types.none, [types.int64] * 2)
        function = cgutils.get_or_insert_function(
            builder.module, function_type, f"cnnkit.task_call.trampoline.{_hash(task_types):x}")
        if function.is_declaration:
            function.linkage = "internal"
            inner = ir.IRBuilder(function.append_basic_block("entry"))
            index, address = call_conv.get_arguments(function)
            pointer = inner.inttoptr(address, context.get_value_type(packed).as_pointer())
            stored = inner.load(pointer)
            values = inner.extract_value(stored, 1)
            task_arguments = [index] + [
                _unowned(context, inner, kind, inner.extract_value(values, i))
                for i, kind in enumerate(arguments.types)]
            task_type = call_conv.get_function_type(types.none, task_types)
            task = inner.inttoptr(inner.extract_value(stored, 0), task_type.as_pointer())
            status, _ = call_conv.call_function(inner, task, types.none, task_types,
                                                task_arguments)
            with cgutils.if_unlikely(inner, status.is_error):
                call_conv.return_status_propagate(inner, status)
            call_conv.return_native_none(inner)
        return builder.ptrtoint(function, context.get_value_type(types.int64))
    return types.int64(arguments), codegen


def _unowned(context, builder, kind, value):
    """An array ``value`` as a view that owns nothing (no meminfo), as a parallel loop's body
    gets its arrays: the task's views of it then take no reference, an atomic count on the
    array's one meminfo that the threads' tasks would contend for (a task per plane of
    (32, 32, 784) float32: 325 against 100 µs on 2 threads). The kernel's caller holds the
    arrays until the loop has run, and a task returns nothing, so none outlives the call."""
    if not isinstance(kind, types.Array):
        return value
    array = context.make_array(kind)(context, builder, value=value)
    array.meminfo = cgutils.get_null_value(array.meminfo.type)
    return array._getvalue()


def _address(dispatcher, argument_types):
    """The compiled (or cached) variant of ``dispatcher`` for these types, and its address."""
    dispatcher.compile(argument_types)
    result = dispatcher.overloads[argument_types]
    return result, result.library.get_pointer_to_function(result.fndesc.llvm_func_name)


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
            if find_task(self.table, wanted) >= 0:
                return
            # row 0, before any task's: the one loop (its hash 0 is never a task's)
            rows = [] if self.table.shape[0] else [
                [0, _address(_every_task, (types.int64,) * 3)[1]]]
            result, address = _address(self.task, argument_types)
            if result.signature.return_type != types.none:
                raise AssertionError("task_call: a task must return nothing")
            rows.append([wanted, address])
            self.table = np.concatenate([self.table, np.array(rows, np.int64)])


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


@numba.njit(cache=True)
def _each(tasks, count, arguments):
    return run_tasks(tasks, count, arguments)


def _arguments_types(count, arguments):
    return _index_and_arguments(*arguments)


class Loop:
    """A parallel loop over one task: ``Loop(task, count)(*args)`` runs task(i, *args) for
    each i < count(*args) on the one parallel loop, as ``for i in prange(count): task(i,
    *args)`` in a kernel of its own would, without compiling a parallel loop for it; the task
    is compiled on the first call with each kind of operand (``Tasks``)."""

    def __init__(self, task, count):
        self._tasks, self._count = Tasks(task, _arguments_types), count

    def __call__(self, *args):
        self._tasks.run(_each, self._count(*args), args)
