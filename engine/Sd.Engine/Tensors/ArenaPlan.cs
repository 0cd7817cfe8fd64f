namespace Sd.Engine.Tensors;

/// <summary>
/// Plans activation memory for one run shape (batch, height, width): the model declares every buffer it needs with
/// the span of execution steps during which it is alive; the plan assigns offsets so that buffers whose lifetimes
/// do not overlap share memory (greedy by size, first fit). Done once per resolution, then every step reuses the
/// same addresses: no allocation in the hot loop.
/// </summary>
public sealed class ArenaPlan
{
    private readonly List<Request> _requests = new();

    private readonly record struct Request(long Floats, int FirstStep, int LastStep);

    /// <summary>Declares a buffer alive from <paramref name="firstStep"/> through <paramref name="lastStep"/>.</summary>
    /// <returns>A slot id for <see cref="TensorArena.Slot"/>.</returns>
    public int Add(long floats, int firstStep, int lastStep)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(floats);
        ArgumentOutOfRangeException.ThrowIfLessThan(lastStep, firstStep);
        _requests.Add(new Request(floats, firstStep, lastStep));
        return _requests.Count - 1;
    }

    public int Count => _requests.Count;

    /// <summary>The size, in floats, requested for slot <paramref name="id"/>.</summary>
    public long SizeOf(int id) => _requests[id].Floats;

    /// <summary>Computes offsets (in floats, each a multiple of 16 = 64 bytes) and the total size.</summary>
    public (long[] Offsets, long TotalFloats) Solve()
    {
        var order = new int[_requests.Count];
        for (int i = 0; i < order.Length; i++)
        {
            order[i] = i;
        }
        // Largest first, ties by declaration order, so the layout is deterministic.
        Array.Sort(order, (a, b) => _requests[a].Floats != _requests[b].Floats
            ? _requests[b].Floats.CompareTo(_requests[a].Floats)
            : a.CompareTo(b));
        var offsets = new long[_requests.Count];
        var placed = new List<int>(_requests.Count);
        long total = 0;
        foreach (int id in order)
        {
            Request r = _requests[id];
            long size = RoundUp(r.Floats);
            long offset = 0;
            // Try the lowest offset that collides with no live-overlapping buffer already placed.
            bool moved = true;
            while (moved)
            {
                moved = false;
                foreach (int other in placed)
                {
                    Request o = _requests[other];
                    bool liveTogether = r.FirstStep <= o.LastStep && o.FirstStep <= r.LastStep;
                    long oEnd = offsets[other] + RoundUp(o.Floats);
                    if (liveTogether && offset < oEnd && offsets[other] < offset + size)
                    {
                        offset = oEnd;
                        moved = true;
                    }
                }
            }
            offsets[id] = offset;
            placed.Add(id);
            total = Math.Max(total, offset + size);
        }
        return (offsets, total);
    }

    private static long RoundUp(long floats) => (floats + 15) & ~15L;
}
