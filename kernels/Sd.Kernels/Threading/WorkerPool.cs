using System.Diagnostics;
using System.Runtime.ExceptionServices;

namespace Sd.Kernels.Threading;

/// <summary>
/// A fixed pool of worker threads for kernel tiles. A call hands out task indices 0..count-1 through one atomic
/// counter (the caller works too) and returns when all are done. Work is described by an unmanaged function pointer
/// and a context pointer (usually to a struct on the caller's stack, which lives until the call returns), so a
/// parallel kernel call allocates nothing. Workers spin briefly between calls, because a UNet step issues thousands
/// of back-to-back kernels and an OS wake-up costs more than many of them; then they sleep.
/// </summary>
public sealed unsafe class WorkerPool : IDisposable
{
    private const int SpinIterations = 20_000;

    private readonly Thread[] _threads;
    private readonly SemaphoreSlim _wake = new(0);
    private readonly object _callLock = new();
    private volatile bool _stopping;

    // The current call: written by the caller before the ticket write that publishes it.
    private delegate*<void*, int, void> _task;
    private void* _context;
    private int _taskCount;
    private int _pending;
    private int _sleepers;
    private ExceptionDispatchInfo? _failure;

    // (generation << 32) | next task index. Claiming a task is a CAS on this, so a worker still finishing the
    // previous call can never take an index of the next one: its generation no longer matches.
    private long _ticket;

    // Utilization (see MeasureUtilization): the threads' time inside calls, and the part of it spent in tasks.
    private volatile bool _measuring;
    private long _callTicks;
    private long _taskTicks;

    /// <summary>The most threads a pool takes: more than any machine Sd runs on, far fewer than would exhaust the OS.</summary>
    public const int MaxThreads = 1024;

    public WorkerPool(int threadCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threadCount, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(threadCount, MaxThreads);
        ThreadCount = threadCount;
        _threads = new Thread[threadCount - 1];
        for (int i = 0; i < _threads.Length; i++)
        {
            _threads[i] = new Thread(WorkerLoop) { IsBackground = true, Name = $"sd-worker-{i + 1}" };
            _threads[i].Start();
        }
    }

    private static readonly Lock s_sharedGate = new();
    private static WorkerPool? s_shared;

    /// <summary>Whether this thread is running a pool task (which must not call back into a pool).</summary>
    [ThreadStatic]
    private static bool t_inTask;
    private static int s_requestedThreads;

    /// <summary>
    /// The process-wide pool, created on first use: one thread per logical core, or SD_THREADS, or what
    /// <see cref="ConfigureShared"/> asked for.
    /// </summary>
    public static WorkerPool Shared
    {
        get
        {
            if (s_shared is { } pool) return pool;
            lock (s_sharedGate)
            {
                return s_shared ??= new WorkerPool(s_requestedThreads > 0 ? s_requestedThreads : DefaultThreadCount());
            }
        }
    }

    /// <summary>Sets the shared pool's thread count; only before its first use (e.g. a CLI's --threads).</summary>
    public static void ConfigureShared(int threadCount)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(threadCount, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(threadCount, MaxThreads);
        lock (s_sharedGate)
        {
            if (s_shared != null && s_shared.ThreadCount != threadCount)
            {
                throw new InvalidOperationException($"the shared worker pool already runs {s_shared.ThreadCount} threads");
            }
            s_requestedThreads = threadCount;
        }
    }

    /// <summary>Threads working on a call, the caller included.</summary>
    public int ThreadCount { get; }

    /// <summary>
    /// Whether parallel calls record how the threads spend their time inside them (see <see cref="Utilization"/>).
    /// Off by default; on, each task reads the clock twice.
    /// </summary>
    public bool MeasureUtilization
    {
        get => _measuring;
        set => _measuring = value;
    }

    /// <summary>
    /// Since the last <see cref="ResetUtilization"/>, while measured: the threads' time inside parallel calls (each
    /// call's wall time x <see cref="ThreadCount"/>) and the part of it they spent running tasks. The rest is threads
    /// waiting inside a call, mostly at its end for another thread's last task: what a split into too few or unequal
    /// tasks costs. Calls of one task run on the caller alone and are not counted.
    /// </summary>
    public (TimeSpan InCalls, TimeSpan InTasks) Utilization =>
        (Stopwatch.GetElapsedTime(0, Volatile.Read(ref _callTicks)), Stopwatch.GetElapsedTime(0, Volatile.Read(ref _taskTicks)));

    public void ResetUtilization()
    {
        lock (_callLock)
        {
            Volatile.Write(ref _callTicks, 0);
            Volatile.Write(ref _taskTicks, 0);
        }
    }

    private static int DefaultThreadCount() =>
        ThreadCountSetting(Environment.GetEnvironmentVariable("SD_THREADS")) ?? Math.Min(Environment.ProcessorCount, MaxThreads);

    /// <summary>
    /// The thread count SD_THREADS asks for: null when it is unset or empty; a whole number from 1 to
    /// <see cref="MaxThreads"/>; anything else is refused rather than ignored, so a typo does not silently run on
    /// every core.
    /// </summary>
    public static int? ThreadCountSetting(string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            return null;
        }
        if (!int.TryParse(value, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out int n)
            || n < 1 || n > MaxThreads)
        {
            throw new ArgumentOutOfRangeException("SD_THREADS", value, $"SD_THREADS must be a whole number of threads from 1 to {MaxThreads}");
        }
        return n;
    }

    /// <summary>
    /// Runs <paramref name="task"/>(context, i) for every i in [0, count) and returns when all have finished.
    /// Calls from several threads are serialized; a task must not call back into the pool. If tasks throw, the
    /// first exception is rethrown here after all tasks have run.
    /// </summary>
    public void Run(delegate*<void*, int, void> task, void* context, int count)
    {
        if (count <= 0)
        {
            return;
        }
        if (count == 1 || _threads.Length == 0)
        {
            for (int i = 0; i < count; i++)
            {
                task(context, i);
            }
            return;
        }
        if (t_inTask)
        {
            // The calling thread would wait for its own call's lock (a worker) or rewrite the running call's state
            // (the caller, whose lock is re-entrant): either way the pool would never finish.
            throw new InvalidOperationException("a worker pool task started pool work of its own; tasks must not call back into the pool");
        }
        lock (_callLock)
        {
            long start = _measuring ? Stopwatch.GetTimestamp() : 0;
            // Close the last call before its fields are rewritten. A worker may have read that call's final ticket
            // (every index taken) and be about to compare its index with the task count: if it read the new, larger
            // count there, its claim on the old ticket would succeed and run this call's task with an index that is
            // also handed out below (twice run, _pending never back to 0: the pool hung, seen on 8 threads). Against
            // the closed ticket that claim fails. The closing index is past any task count; the generation is kept,
            // so waiting workers do not wake for it.
            long previous = Volatile.Read(ref _ticket) >> 32;
            Interlocked.Exchange(ref _ticket, previous << 32 | int.MaxValue);
            _task = task;
            _context = context;
            _taskCount = count;
            _pending = count;
            long generation = previous + 1;
            Volatile.Write(ref _ticket, generation << 32);
            int sleepers = Volatile.Read(ref _sleepers);
            if (sleepers > 0)
            {
                _wake.Release(sleepers);
            }
            Drain(generation);
            var spin = new SpinWait();
            while (Volatile.Read(ref _pending) != 0)
            {
                spin.SpinOnce(-1);
            }
            if (start != 0)
            {
                Volatile.Write(ref _callTicks, _callTicks + (Stopwatch.GetTimestamp() - start) * ThreadCount);
            }
            ExceptionDispatchInfo? failure = _failure;
            _failure = null;
            failure?.Throw();
        }
    }

    private void Drain(long generation)
    {
        while (true)
        {
            long ticket = Volatile.Read(ref _ticket);
            int index = (int)ticket;
            if (ticket >> 32 != generation || index >= _taskCount)
            {
                return;
            }
            if (Interlocked.CompareExchange(ref _ticket, ticket + 1, ticket) == ticket)
            {
                t_inTask = true;
                long begun = _measuring ? Stopwatch.GetTimestamp() : 0;
                try
                {
                    _task(_context, index);
                }
                catch (Exception e)
                {
                    // A worker thread must never die (that would take the process down): the first failure is
                    // rethrown on the calling thread once every task has finished.
                    Interlocked.CompareExchange(ref _failure, ExceptionDispatchInfo.Capture(e), null);
                }
                finally
                {
                    t_inTask = false;
                }
                if (begun != 0)
                {
                    Interlocked.Add(ref _taskTicks, Stopwatch.GetTimestamp() - begun);
                }
                Interlocked.Decrement(ref _pending);
            }
        }
    }

    private void WorkerLoop()
    {
        long seen = 0;
        while (true)
        {
            long generation = WaitForCall(seen);
            if (_stopping)
            {
                return;
            }
            seen = generation;
            Drain(generation);
        }
    }

    private long WaitForCall(long seen)
    {
        for (int spin = 0; spin < SpinIterations; spin++)
        {
            long generation = Volatile.Read(ref _ticket) >> 32;
            if (generation != seen || _stopping)
            {
                return generation;
            }
            Thread.SpinWait(8);
        }
        while (true)
        {
            Interlocked.Increment(ref _sleepers);
            long generation = Volatile.Read(ref _ticket) >> 32;
            if (generation != seen || _stopping)
            {
                Interlocked.Decrement(ref _sleepers);
                return generation;
            }
            _wake.Wait(50);
            Interlocked.Decrement(ref _sleepers);
        }
    }

    public void Dispose()
    {
        _stopping = true;
        _wake.Release(_threads.Length);
        foreach (Thread thread in _threads)
        {
            thread.Join();
        }
        _wake.Dispose();
    }
}
