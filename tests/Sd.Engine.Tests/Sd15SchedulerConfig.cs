using Sd.Loaders.Config;

namespace Sd.Engine.Tests;

/// <summary>The noise schedule of SD 1.5's scheduler_config.json, which the scheduler tests vary with <c>with</c>.</summary>
internal static class Sd15SchedulerConfig
{
    public static SchedulerConfig Value { get; } = new()
    {
        BetaSchedule = "scaled_linear",
        BetaStart = 0.00085,
        BetaEnd = 0.012,
        StepsOffset = 1,
        SetAlphaToOne = false,
        SkipPrkSteps = true,
    };
}
