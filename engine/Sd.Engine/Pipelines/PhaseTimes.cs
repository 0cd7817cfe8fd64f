using System.Diagnostics;

namespace Sd.Engine.Pipelines;

/// <summary>
/// Where a generation's time went. Component loads are counted once, in <see cref="Loading"/>, and left out of the
/// phase that triggered them.
/// </summary>
internal sealed class PhaseTimes
{
    public TimeSpan Loading;
    public TimeSpan Text;
    public TimeSpan Denoising;
    public TimeSpan Decoding;

    public PhaseClock Start() => new(this);
}

/// <summary>The time since a phase started, less the loads that happened meanwhile.</summary>
internal readonly struct PhaseClock
{
    private readonly PhaseTimes _times;
    private readonly long _start;
    private readonly TimeSpan _loadingAtStart;

    public PhaseClock(PhaseTimes times)
    {
        _times = times;
        _start = Stopwatch.GetTimestamp();
        _loadingAtStart = times.Loading;
    }

    public TimeSpan Elapsed => Stopwatch.GetElapsedTime(_start) - (_times.Loading - _loadingAtStart);
}
