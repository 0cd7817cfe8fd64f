using System.Diagnostics;
using Sd.Kernels.Threading;

namespace Sd.Kernels.Tests;

/// <summary>
/// The worker pool every parallel kernel runs on: each task index of a call runs exactly once, calls follow each
/// other without a task leaking from one into the next, and a task's exception comes back to the caller.
/// </summary>
public sealed unsafe class WorkerPoolTests
{
    private struct Counts
    {
        public int* Runs; // runs per task index of the current call
    }

    private static void CountRun(void* state, int index) => Interlocked.Increment(ref ((Counts*)state)->Runs[index]);

    /// <summary>Task 0 spins for 20 ms; the others return at once.</summary>
    private static void SpinFirst(void* state, int index)
    {
        var clock = Stopwatch.StartNew();
        while (index == 0 && clock.ElapsedMilliseconds < 20)
        {
        }
    }

    /// <summary>
    /// Utilization counts nothing until asked; then each call's wall time times the thread count, and the tasks' time
    /// within it. A call of one long and one empty task leaves one of two threads waiting for most of it.
    /// </summary>
    [Fact]
    public void Utilization_shows_a_thread_waiting_for_the_last_task()
    {
        using var pool = new WorkerPool(2);
        pool.Run(&SpinFirst, null, 2);
        Assert.Equal(TimeSpan.Zero, pool.Utilization.InCalls);
        pool.MeasureUtilization = true;
        pool.Run(&SpinFirst, null, 2);
        pool.MeasureUtilization = false;
        (TimeSpan inCalls, TimeSpan inTasks) = pool.Utilization;
        Assert.True(inTasks >= TimeSpan.FromMilliseconds(20), $"tasks {inTasks.TotalMilliseconds} ms");
        Assert.True(inTasks.TotalSeconds < 0.75 * inCalls.TotalSeconds, $"tasks {inTasks.TotalMilliseconds} ms of {inCalls.TotalMilliseconds} ms in the call");
        pool.ResetUtilization();
        Assert.Equal((TimeSpan.Zero, TimeSpan.Zero), pool.Utilization);
    }

    /// <summary>
    /// Back-to-back calls of varying size on more threads than this machine has cores, so that workers are preempted
    /// at every point of a claim. A worker that read a finished call's ticket and then the next call's task count
    /// once claimed a phantom index and ran the next call's task with it: one index ran twice and the call never
    /// finished (a benchmark hung on 8 of 16 cores; on this 2-core machine the old pool stopped after 67,000 to
    /// 195,000 calls on 3 and 8 threads). The calls run on a helper thread, so that a pool that stops making progress
    /// for a minute fails the test instead of stopping the run.
    /// </summary>
    [Fact]
    public void Every_task_of_every_call_runs_exactly_once()
    {
        const int MaxTasks = 24, Calls = 1_000_000;
        string? failure = null;
        int done = 0;
        var runner = new Thread(() =>
        {
            using var pool = new WorkerPool(8);
            int* runs = stackalloc int[MaxTasks];
            var counts = new Counts { Runs = runs };
            var random = new Random(5);
            for (int call = 0; call < Calls && failure == null; call++)
            {
                int count = random.Next(1, MaxTasks + 1);
                new Span<int>(runs, MaxTasks).Clear();
                pool.Run(&CountRun, &counts, count);
                for (int i = 0; i < MaxTasks; i++)
                {
                    if (runs[i] != (i < count ? 1 : 0))
                    {
                        failure = $"call {call} of {count} tasks: index {i} ran {runs[i]} times";
                        break;
                    }
                }
                Volatile.Write(ref done, call + 1);
            }
        }) { IsBackground = true };
        runner.Start();
        int seen = -1;
        while (!runner.Join(TimeSpan.FromMinutes(1)))
        {
            int now = Volatile.Read(ref done);
            Assert.True(now != seen, $"the pool stopped finishing calls after {now} of {Calls}");
            seen = now;
        }
        Assert.Null(failure);
        Assert.Equal(Calls, done);
    }

    private static void ThrowOnOdd(void* state, int index)
    {
        Interlocked.Increment(ref ((Counts*)state)->Runs[index]);
        if (index % 2 == 1)
        {
            throw new InvalidOperationException($"task {index}");
        }
    }

    [Fact]
    public void A_failing_task_is_rethrown_after_every_task_ran_and_the_pool_goes_on()
    {
        using var pool = new WorkerPool(3);
        int* runs = stackalloc int[9];
        var counts = new Counts { Runs = runs };
        InvalidOperationException? error = null;
        try
        {
            pool.Run(&ThrowOnOdd, &counts, 9);
        }
        catch (InvalidOperationException e)
        {
            error = e;
        }
        Assert.NotNull(error);
        Assert.StartsWith("task ", error.Message);
        for (int i = 0; i < 9; i++)
        {
            Assert.Equal(1, runs[i]);
        }

        new Span<int>(runs, 9).Clear();
        pool.Run(&CountRun, &counts, 9);
        for (int i = 0; i < 9; i++)
        {
            Assert.Equal(1, runs[i]);
        }
    }

    private static void CallBackIntoThePool(void* state, int index)
    {
        var pool = (WorkerPool)System.Runtime.InteropServices.GCHandle.FromIntPtr((nint)state).Target!;
        pool.Run(&CountNothing, null, 4);
    }

    private static void CountNothing(void* state, int index)
    {
    }

    [Fact]
    public void A_task_that_calls_back_into_the_pool_is_refused_instead_of_hanging()
    {
        // Once this hung: the nested call waited for the pool's lock (on a worker) or rewrote the running call's
        // state (on the caller, whose lock is re-entrant), and the outer call never finished.
        using var pool = new WorkerPool(2);
        var handle = System.Runtime.InteropServices.GCHandle.Alloc(pool);
        try
        {
            nint state = System.Runtime.InteropServices.GCHandle.ToIntPtr(handle);
            string? message = null;
            int wrongCounts = -1;
            var run = new Thread(() =>
            {
                message = Assert.Throws<InvalidOperationException>(() => pool.Run(&CallBackIntoThePool, (void*)state, 4)).Message;
                // The same thread (it ran a task of the failed call) may start pool work again afterwards.
                int* runs = stackalloc int[5];
                var counts = new Counts { Runs = runs };
                pool.Run(&CountRun, &counts, 5);
                wrongCounts = 0;
                for (int i = 0; i < 5; i++)
                {
                    wrongCounts += runs[i] == 1 ? 0 : 1;
                }
            });
            run.Start();
            Assert.True(run.Join(TimeSpan.FromMinutes(1)), "the pool hung");
            Assert.StartsWith("a worker pool task started pool work of its own", message);
            Assert.Equal(0, wrongCounts);
        }
        finally
        {
            handle.Free();
        }
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData("", null)]
    [InlineData("  ", null)]
    [InlineData("1", 1)]
    [InlineData(" 16 ", 16)]
    [InlineData("1024", 1024)]
    public void SD_THREADS_unset_or_a_count_is_taken(string? value, int? expected) =>
        Assert.Equal(expected, WorkerPool.ThreadCountSetting(value));

    [Theory]
    [InlineData("0")]
    [InlineData("-2")]
    [InlineData("1025")]
    [InlineData("2147483648")]
    [InlineData("four")]
    [InlineData("2.5")]
    public void SD_THREADS_that_is_not_a_count_is_refused_naming_it(string value)
    {
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => WorkerPool.ThreadCountSetting(value));
        Assert.Equal("SD_THREADS", e.ParamName);
        Assert.Equal(value, e.ActualValue);
        Assert.StartsWith($"SD_THREADS must be a whole number of threads from 1 to {WorkerPool.MaxThreads}", e.Message);
    }
}
