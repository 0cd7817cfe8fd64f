using Sd.Engine.Pipelines;

namespace Sd.Engine.Tests;

/// <summary>Reports on the generating thread, as a test needs (Progress&lt;T&gt; would post to the thread pool).</summary>
internal sealed class SyncProgress(Action<StepInfo> report) : IProgress<StepInfo>
{
    public void Report(StepInfo value) => report(value);
}
