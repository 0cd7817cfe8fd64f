namespace Sd.Kernels.Memory;

/// <summary>
/// The bookkeeping of <see cref="AlignedMemory"/>'s kept memory: free address ranges, adjacent ones merged, handed
/// out best fit (the smallest range that holds a request, its remainder kept). Addresses only, never dereferenced,
/// so it is tested on made-up ranges. Not thread-safe: the caller holds a lock.
/// </summary>
internal sealed class FreeRanges
{
    private readonly SortedSet<(nint Start, nuint Size)> _byAddress =
        new(Comparer<(nint Start, nuint Size)>.Create(static (a, b) => a.Start.CompareTo(b.Start)));

    private readonly SortedSet<(nuint Size, nint Start)> _bySize = new();

    /// <summary>Bytes in all ranges.</summary>
    public nuint Bytes { get; private set; }

    public int Count => _byAddress.Count;

    /// <summary>
    /// The start of <paramref name="size"/> bytes cut from the front of the smallest range that holds them, or 0 when
    /// none does.
    /// </summary>
    public nint Take(nuint size)
    {
        if (_bySize.Count == 0 || _bySize.Max.Size < size)
        {
            return 0;
        }
        (nuint found, nint start) = _bySize.GetViewBetween((size, nint.MinValue), _bySize.Max).Min;
        Remove(start, found);
        if (found > size)
        {
            // The remainder's neighbours are the block just taken and whatever followed the range: nothing to merge.
            Insert(start + (nint)size, found - size);
        }
        return start;
    }

    /// <summary>Adds a range, merged with the ranges just before and after it when they touch it.</summary>
    public void Put(nint start, nuint size)
    {
        if (_byAddress.Count > 0 && _byAddress.Min.Start < start)
        {
            (nint previous, nuint previousSize) = _byAddress.GetViewBetween(_byAddress.Min, (start - 1, 0)).Max;
            if (previous + (nint)previousSize == start)
            {
                Remove(previous, previousSize);
                start = previous;
                size += previousSize;
            }
        }
        if (_byAddress.Count > 0 && _byAddress.Max.Start > start)
        {
            (nint next, nuint nextSize) = _byAddress.GetViewBetween((start + 1, 0), _byAddress.Max).Min;
            if (start + (nint)size == next)
            {
                Remove(next, nextSize);
                size += nextSize;
            }
        }
        Insert(start, size);
    }

    /// <summary>Removes and returns the largest range (its size 0 when there is none).</summary>
    public (nint Start, nuint Size) TakeLargest()
    {
        if (_bySize.Count == 0)
        {
            return (0, 0);
        }
        (nuint size, nint start) = _bySize.Max;
        Remove(start, size);
        return (start, size);
    }

    private void Insert(nint start, nuint size)
    {
        _byAddress.Add((start, size));
        _bySize.Add((size, start));
        Bytes += size;
    }

    private void Remove(nint start, nuint size)
    {
        _byAddress.Remove((start, size));
        _bySize.Remove((size, start));
        Bytes -= size;
    }
}
