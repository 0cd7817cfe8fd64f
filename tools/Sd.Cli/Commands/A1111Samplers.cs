using Sd.Engine.Schedulers;
using Sd.Loaders;

namespace Sd.Cli.Commands;

/// <summary>
/// AUTOMATIC1111's names (1.9 and later) for Sd's schedulers, both ways: its sampler and schedule type ("Sampler: DPM++
/// 2M, Schedule type: Karras"), written into a PNG's parameters so that A1111's PNG Info recognises them, and read
/// back from such parameters, whoever wrote them, to the Sd scheduler that runs them.
/// </summary>
internal static class A1111Samplers
{
    /// <summary>
    /// One of Sd's solvers under its A1111 name. <paramref name="SpacedAs"/> is the schedule type Sd writes for the
    /// solver's own (spaced) levels where A1111's default (<paramref name="Automatic"/>, its "Automatic") is another
    /// one: diffusers' DPM-Solver levels (linspace over steps + 1, the last dropped) are A1111's SGM Uniform, the
    /// k-diffusion samplers' Euler levels its Uniform (the model's levels). Where A1111's default is those levels
    /// themselves (Euler, LMS, Heun, ...), nothing is written. <paramref name="Types"/> says which schedule types the
    /// solver runs; <paramref name="Keys"/> are option keys written after the name (UniPC's).
    /// </summary>
    private readonly record struct Sampler(string Solver, string Name, string? SpacedAs, Types Types, SigmaRamp Automatic, string Keys = "");

    /// <summary>The schedule types a sampler runs in Sd, read from A1111's.</summary>
    private enum Types
    {
        /// <summary>None, and it ignores any, as A1111's samplers on timesteps do (DDIM, PLMS, UniPC).</summary>
        Ignored,

        /// <summary>Its Automatic (Uniform) alone: LCM, a k-diffusion sampler in A1111 that runs on any, on timesteps in Sd.</summary>
        AutomaticOnly,

        /// <summary>Every one Sd has as a ramp.</summary>
        Ramps,
    }

    private static readonly Sampler[] Samplers =
    [
        new("ddim", "DDIM", null, Types.Ignored, SigmaRamp.Spaced),
        new("pndm", "PLMS", null, Types.Ignored, SigmaRamp.Spaced), // PNDM as SD runs it (skip_prk_steps)
        new("lcm", "LCM", null, Types.AutomaticOnly, SigmaRamp.Spaced),
        new("unipc-a1111", "UniPC", null, Types.Ignored, SigmaRamp.Spaced),
        // diffusers' UniPC, bh2 of order 2 on discrete steps, in the keys A1111 writes beside its own UniPC's
        // non-default options (bh1, order 3: unipc-a1111, which A1111's PNG Info names plainly).
        new("unipc", "UniPC", null, Types.Ramps, SigmaRamp.Spaced, ", UniPC variant: bh2, UniPC order: 2"),
        new("euler", "Euler", null, Types.Ramps, SigmaRamp.Spaced),
        new("euler-a", "Euler a", null, Types.Ramps, SigmaRamp.Spaced),
        new("heun", "Heun", null, Types.Ramps, SigmaRamp.Spaced),
        new("lms", "LMS", null, Types.Ramps, SigmaRamp.Spaced),
        new("dpm-fast", "DPM fast", null, Types.Ramps, SigmaRamp.Spaced), // A1111's Automatic: the model's levels, its txt2img's whatever the type
        new("dpm++-2m", "DPM++ 2M", "SGM Uniform", Types.Ramps, SigmaRamp.Karras),
        new("dpm++-2m-sde", "DPM++ 2M SDE", "SGM Uniform", Types.Ramps, SigmaRamp.Exponential),
        new("dpm++-2m-sde-heun", "DPM++ 2M SDE Heun", "SGM Uniform", Types.Ramps, SigmaRamp.Exponential),
        new("dpm++-3m-sde", "DPM++ 3M SDE", "Uniform", Types.Ramps, SigmaRamp.Exponential),
        new("dpm2", "DPM2", "Uniform", Types.Ramps, SigmaRamp.Karras),
        new("dpm2-a", "DPM2 a", "Uniform", Types.Ramps, SigmaRamp.Karras),
        new("dpm++-2s-a", "DPM++ 2S a", "Uniform", Types.Ramps, SigmaRamp.Karras),
        new("dpm++-sde", "DPM++ SDE", "Uniform", Types.Ramps, SigmaRamp.Karras),
        new("restart", "Restart", "Uniform", Types.Ramps, SigmaRamp.Karras),
    ];

    /// <summary>A1111's schedule type labels of Sd's ramps.</summary>
    private static readonly (SigmaRamp Ramp, string Label)[] Ramps =
    [
        (SigmaRamp.Karras, "Karras"), (SigmaRamp.Exponential, "Exponential"), (SigmaRamp.Beta, "Beta"),
        (SigmaRamp.KlOptimal, "KL Optimal"), (SigmaRamp.AlignYourSteps, "Align Your Steps"), (SigmaRamp.Simple, "Simple"),
        (SigmaRamp.Normal, "Normal"), (SigmaRamp.SgmUniform, "SGM Uniform"),
    ];

    /// <summary>
    /// A1111's schedule types as it recognises them at the end of a sampler's name (its sd_schedulers: label, name and
    /// aliases), in its order: pre-1.9 names such as "DPM++ 2M Karras" carry the type in the name.
    /// </summary>
    private static readonly (string Label, string[] Names)[] ScheduleTypes =
    [
        ("Automatic", ["Automatic", "automatic"]), ("Uniform", ["Uniform", "uniform"]), ("Karras", ["Karras", "karras"]),
        ("Exponential", ["Exponential", "exponential"]), ("Polyexponential", ["Polyexponential", "polyexponential"]),
        ("SGM Uniform", ["SGM Uniform", "sgm_uniform", "SGMUniform"]), ("KL Optimal", ["KL Optimal", "kl_optimal"]),
        ("Align Your Steps", ["Align Your Steps", "align_your_steps"]), ("Simple", ["Simple", "simple"]),
        ("Normal", ["Normal", "normal"]), ("DDIM", ["DDIM", "ddim"]), ("Beta", ["Beta", "beta"]),
    ];

    /// <summary>
    /// The scheduler <paramref name="scheduler"/> on <paramref name="ramp"/> (the ramp it runs, named or from the
    /// model's scheduler config) as A1111's parameters name it: <c>Sampler: DPM++ 2M, Schedule type: Karras</c>.
    /// </summary>
    /// <param name="samplerKey">The keys (and <paramref name="scheduleKey"/>): A1111's Hires sampler and Hires schedule type for a hires fix's scheduler.</param>
    internal static string Write(string scheduler, SigmaRamp ramp, string samplerKey = "Sampler", string scheduleKey = "Schedule type")
    {
        string solver = Scheduler.SolverOf(scheduler);
        (string name, string? schedule) = Find(solver) is { } sampler
            ? (sampler.Name + sampler.Keys, ramp == SigmaRamp.Spaced ? sampler.SpacedAs : LabelOf(ramp))
            : (scheduler, null);
        return $"{samplerKey}: {name}" + (schedule is null ? "" : $", {scheduleKey}: {schedule}");
    }

    /// <summary>Whether <see cref="Write"/> writes a schedule type for <paramref name="scheduler"/> on <paramref name="ramp"/>.</summary>
    internal static bool WritesSchedule(string scheduler, SigmaRamp ramp) =>
        ramp != SigmaRamp.Spaced || Find(Scheduler.SolverOf(scheduler))?.SpacedAs is not null;

    /// <summary>
    /// The Sd scheduler that runs A1111's <paramref name="samplerName"/> on <paramref name="scheduleType"/> (null or
    /// "Automatic": the sampler's default), read as A1111 reads them (get_sampler_and_scheduler): a schedule type at the
    /// end of the sampler's name ("DPM++ 2M Karras", A1111 before 1.9) is taken off and used. UniPC is told apart by
    /// <paramref name="uniPc"/> (the UniPC keys' values, null when absent). A sampler or schedule type Sd does not
    /// run is an <see cref="InvalidFileException"/> of <paramref name="path"/> that says to give <paramref name="flag"/>.
    /// </summary>
    /// <param name="what">The key read, for messages ("Sampler", "Hires sampler").</param>
    internal static string Read(string samplerName, string? scheduleType, Func<string, string?> uniPc, string path, string what, string flag)
    {
        string name = samplerName;
        foreach ((string label, string[] names) in ScheduleTypes)
        {
            foreach (string each in names)
            {
                if (name.EndsWith(" " + each, StringComparison.Ordinal))
                {
                    scheduleType = label;
                    name = name[..^(each.Length + 1)];
                    break;
                }
            }
        }
        Sampler sampler = name == "UniPC" ? UniPcOf(uniPc, path, flag)
            : FindByName(name) ?? throw new InvalidFileException(path, $"parameters: {what} '{samplerName}' is not one Sd runs; give {flag} (see `sd generate --help`)");
        return OnSchedule(sampler, scheduleType, path, what, flag);
    }

    /// <summary>
    /// The Sd scheduler that runs <paramref name="scheduler"/>'s solver on A1111's <paramref name="scheduleType"/>, as
    /// <see cref="Read"/> reads a type (a hires schedule type for a first pass the command line names); null for a
    /// solver Sd does not know (the scheduler's own error says so).
    /// </summary>
    internal static string? ReadSchedule(string scheduler, string? scheduleType, string path, string what, string flag) =>
        Find(Scheduler.SolverOf(scheduler)) is { } sampler ? OnSchedule(sampler, scheduleType, path, what, flag) : null;

    private static string OnSchedule(Sampler sampler, string? scheduleType, string path, string what, string flag)
    {
        scheduleType = LabelOf(scheduleType);
        if (sampler.Types != Types.Ramps)
        {
            return sampler.Types == Types.Ignored || scheduleType is null or "Automatic" or "Uniform" ? sampler.Solver
                : throw new InvalidFileException(path, $"parameters: {sampler.Name} on schedule type '{scheduleType}' is not one Sd runs (its {sampler.Name} runs on timesteps); give {flag}");
        }
        SigmaRamp ramp = scheduleType is null or "Automatic" ? sampler.Automatic
            : scheduleType == sampler.SpacedAs || scheduleType == "Uniform" && sampler.SpacedAs is null ? SigmaRamp.Spaced
            : scheduleType == "Uniform" ? SigmaRamp.Normal // A1111's Uniform, the model's levels, is Sd's Normal ramp
            : RampOf(scheduleType) ?? throw new InvalidFileException(path,
                $"parameters: schedule type '{scheduleType}' ({what} {sampler.Name}) is not one Sd runs; give {flag} (see `sd generate --help`)");
        return Scheduler.NameOf(sampler.Solver, ramp);
    }

    /// <summary>
    /// A1111's UniPC by its option keys: at its defaults (bh1, order 3, time_uniform, lower order final) it is
    /// unipc-a1111; bh2 of order 2 is diffusers' UniPC, as Sd writes it (<see cref="Write"/>).
    /// </summary>
    private static Sampler UniPcOf(Func<string, string?> key, string path, string flag)
    {
        string variant = key("UniPC variant") ?? "bh1", order = key("UniPC order") ?? "3";
        string skip = key("UniPC skip type") ?? "time_uniform", lowerOrderFinal = key("UniPC lower order final") ?? "True";
        string solver = (variant, order, skip, lowerOrderFinal) switch
        {
            ("bh1", "3", "time_uniform", "True") => "unipc-a1111",
            ("bh2", "2", "time_uniform", "True") => "unipc",
            _ => throw new InvalidFileException(path, $"parameters: A1111's UniPC with variant {variant}, order {order}, skip type {skip}, " +
                $"lower order final {lowerOrderFinal} is not one Sd runs (unipc-a1111 is bh1 of order 3 on time_uniform; unipc, diffusers' UniPC, is written as bh2 of order 2); give {flag}"),
        };
        return Find(solver)!.Value;
    }

    private static Sampler? Find(string solver)
    {
        foreach (Sampler sampler in Samplers)
        {
            if (sampler.Solver == solver) return sampler;
        }
        return null;
    }

    private static Sampler? FindByName(string name)
    {
        foreach (Sampler sampler in Samplers)
        {
            if (sampler.Name == name) return sampler;
        }
        return null;
    }

    private static string LabelOf(SigmaRamp ramp)
    {
        foreach ((SigmaRamp each, string label) in Ramps)
        {
            if (each == ramp) return label;
        }
        throw new ArgumentOutOfRangeException(nameof(ramp), ramp, "no A1111 schedule type");
    }

    private static SigmaRamp? RampOf(string label)
    {
        foreach ((SigmaRamp ramp, string each) in Ramps)
        {
            if (each == label) return ramp;
        }
        return null;
    }

    /// <summary>A schedule type given by any of its A1111 names (label, name or alias) as its label; as it is when unknown.</summary>
    private static string? LabelOf(string? scheduleType)
    {
        foreach ((string label, string[] names) in ScheduleTypes)
        {
            if (Array.IndexOf(names, scheduleType) >= 0) return label;
        }
        return scheduleType;
    }
}
