//! The services the firmware needs from a board. The generation code uses only this trait, so a
//! port to real hardware implements it with the board's HAL and changes nothing else.

use embedded_hal::delay::DelayNs;
use embedded_hal::digital::OutputPin;
use embedded_io::Write;

/// The peripherals and services of one board.
pub trait Board {
    /// Writer for the generated text and the report, for example a UART.
    type Serial: Write;
    /// A pin that is high while the model runs, for example an LED.
    type Status: OutputPin;
    /// A blocking delay.
    type Delay: DelayNs;

    /// Returns the serial writer.
    fn serial(&mut self) -> &mut Self::Serial;

    /// Returns the status pin, or `None` when the board has none.
    fn status(&mut self) -> Option<&mut Self::Status>;

    /// Returns the delay.
    fn delay(&mut self) -> &mut Self::Delay;

    /// Returns the microseconds since an arbitrary start, for the speed report; wraps around
    /// after about 71 minutes.
    fn micros(&mut self) -> u32;

    /// Core clock frequency in Hz, printed in the report.
    fn core_clock_hz(&self) -> u32;

    /// Stops the firmware: exits the emulator with a status, or parks a real board.
    fn exit(&mut self, success: bool) -> !;
}
