namespace Sd.Engine.Schedulers;

/// <summary>
/// Where a sigma scheduler puts its noise levels: at its timesteps' sigmas (the config's spacing), on Karras et al.'s
/// rho-7 ramp, or spaced evenly in log sigma (A1111's "Exponential" schedule type, diffusers' use_exponential_sigmas);
/// the ramps' timesteps are the training times of their sigmas.
/// </summary>
public enum SigmaRamp
{
    Spaced,
    Karras,
    Exponential,
}
